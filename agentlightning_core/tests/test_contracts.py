"""Contracts written in several places, tied together: each checker also fails on a drifted copy.

- the ``Hook`` class mirrors the observer hook specifications (names and parameters);
- docs/plugins.md lists every hook specification with its signature;
- the package root's lazy export map, ``__all__`` and its type-checking imports agree;
- the conformance suites refuse a subclass that redefines one of their tests (unless xfail).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import agentlightning_core
import agentlightning_core.testing
from agentlightning_core import hooks, hookspecs
from agentlightning_core.testing.conformance import ConformanceSuite, xfail_reason

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
INIT = Path(agentlightning_core.__file__)


def hook_specs(module: Any = hookspecs) -> dict[str, Callable[..., Any]]:
    """The hook specifications of ``module``, by name (whatever hooks exist)."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {name: f for name, f in vars(module).items() if callable(f) and hasattr(f, marker)}


def observer_specs(specs: Mapping[str, Callable[..., Any]]) -> dict[str, Callable[..., Any]]:
    """Runtime hooks (``on_rollout_start``, ...): every hook but the ``register_*`` ones."""
    return {name: f for name, f in specs.items() if not name.startswith("register_")}


def parameters(func: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> annotation text (annotations are strings in these modules)."""
    sig = inspect.signature(func)
    return {p.name: str(p.annotation) for p in sig.parameters.values() if p.name != "self"}


# --- Hook <-> observer hook specs ---------------------------------------------------------


def hook_drift(hook_cls: type, specs: Mapping[str, Callable[..., Any]], names: tuple[str, ...]) -> list[str]:
    """How ``hook_cls`` (and ``HOOK_NAMES``, ``names``) differ from the observer ``specs``."""
    problems = []
    observers = observer_specs(specs)
    methods = {n: getattr(hook_cls, n) for n in dir(hook_cls) if not n.startswith("_")}
    for name in sorted(observers.keys() - methods.keys()):
        problems.append(f"Hook lacks a method for hook {name}")
    for name in sorted(methods.keys() - observers.keys()):
        problems.append(f"Hook.{name} has no hook specification")
    if set(names) != observers.keys():
        problems.append(f"HOOK_NAMES {sorted(names)} != observer hooks {sorted(observers)}")
    for name in sorted(observers.keys() & methods.keys()):
        spec, method = parameters(observers[name]), parameters(methods[name])
        if spec != method:
            problems.append(f"Hook.{name}{sorted(method.items())} != hookspec {sorted(spec.items())}")
        kinds = {p.kind for n, p in inspect.signature(methods[name]).parameters.items() if n != "self"}
        if kinds - {inspect.Parameter.KEYWORD_ONLY}:
            problems.append(f"Hook.{name} must take keyword-only arguments (hooks are called with keywords)")
    return problems


def test_the_hook_class_mirrors_the_observer_hook_specs() -> None:
    assert observer_specs(hook_specs()), "no observer hooks found: the checker would check nothing"
    assert hook_drift(hooks.Hook, hook_specs(), hooks.HOOK_NAMES) == []


def test_the_hook_checker_reports_a_drifted_hook_class() -> None:
    specs = hook_specs()
    name, spec = next(iter(observer_specs(specs).items()))
    first = next(iter(parameters(spec)))

    def fewer(self: Any, **kwargs: Any) -> None: ...

    fewer.__signature__ = inspect.signature(spec).replace(  # type: ignore[attr-defined]
        parameters=[
            p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
            for p in inspect.signature(spec).parameters.values()
            if p.name != first
        ]
    )
    drifted = type("DriftedHook", (hooks.Hook,), {name: fewer})
    assert hook_drift(drifted, specs, hooks.HOOK_NAMES) == [
        f"Hook.{name}{sorted(parameters(fewer).items())} != hookspec {sorted(parameters(spec).items())}"
    ]

    def on_new_event(agent: Any) -> None: ...

    grown = {**specs, "on_new_event": on_new_event}
    assert hook_drift(hooks.Hook, grown, hooks.HOOK_NAMES) == [
        "Hook lacks a method for hook on_new_event",
        f"HOOK_NAMES {sorted(hooks.HOOK_NAMES)} != observer hooks {sorted(observer_specs(grown))}",
    ]
    positional = type("PositionalHook", (hooks.Hook,), {name: spec})
    assert hook_drift(positional, specs, hooks.HOOK_NAMES) == [
        f"Hook.{name} must take keyword-only arguments (hooks are called with keywords)"
    ]


# --- hook specs <-> docs/plugins.md ----------------------------------------------------------


def documented_signature(name: str, spec: Callable[..., Any]) -> str:
    args = ", ".join(f"{p}: {annotation}" for p, annotation in parameters(spec).items())
    return f"`{name}({args})`"


def undocumented_hooks(specs: Mapping[str, Callable[..., Any]], docs: str) -> list[str]:
    """The signatures of ``specs`` that ``docs`` does not show (as inline code)."""
    return [documented_signature(n, f) for n, f in specs.items() if documented_signature(n, f) not in docs]


def test_every_hook_spec_is_documented_with_its_signature() -> None:
    assert hook_specs()
    assert undocumented_hooks(hook_specs(), DOCS.read_text()) == []


def test_the_docs_checker_reports_a_missing_hook_and_a_changed_signature() -> None:
    docs = DOCS.read_text()
    specs = hook_specs()
    name, spec = next(iter(specs.items()))
    line = documented_signature(name, spec)
    assert undocumented_hooks(specs, docs.replace(line, "")) == [line]
    renamed = docs.replace(line, line.replace("(", "(extra: int, ", 1))
    assert undocumented_hooks(specs, renamed) == [line]


# --- lazy exports <-> __all__ <-> type-checking imports ----------------------------------


def type_checking_imports(source: str) -> dict[str, str]:
    """Name -> module (relative to the package) of the ``if TYPE_CHECKING:`` imports."""
    out: dict[str, str] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for stmt in ast.walk(node):
                if isinstance(stmt, ast.ImportFrom) and stmt.module:
                    for alias in stmt.names:
                        out[alias.asname or alias.name] = stmt.module.removeprefix("agentlightning_core.")
    return out


def export_drift(module: Any, source: str) -> list[str]:
    """How a lazily exporting package's ``_LAZY``, ``__all__`` and TYPE_CHECKING imports differ."""
    lazy: dict[str, str] = module._LAZY
    problems = []
    eager = [n for n in module.__all__ if n not in lazy]
    if len(set(module.__all__)) != len(module.__all__):
        problems.append("__all__ has duplicates")
    for name in eager:
        if name not in vars(module):
            problems.append(f"{name} is in __all__ but neither lazy nor defined in the package root")
    for name in sorted(lazy.keys() - set(module.__all__)):
        problems.append(f"{name} is lazily exported but not in __all__")
    checked = type_checking_imports(source)
    for name in sorted(lazy.keys() | checked.keys()):
        if lazy.get(name) != checked.get(name):
            problems.append(f"{name}: _LAZY says {lazy.get(name)}, TYPE_CHECKING imports {checked.get(name)}")
    for name, where in sorted(lazy.items()):
        target = importlib.import_module(f"agentlightning_core.{where}")
        if not hasattr(target, name):
            problems.append(f"{name} is not defined in agentlightning_core.{where}")
    return problems


def test_the_lazy_exports_equal_all_and_the_type_checking_imports() -> None:
    assert export_drift(agentlightning_core, INIT.read_text()) == []
    for name in agentlightning_core.__all__:  # and each resolves
        assert getattr(agentlightning_core, name) is not None


def test_the_export_checker_reports_a_drifted_package_root() -> None:
    source = INIT.read_text()
    lazy = dict(agentlightning_core._LAZY)
    root = SimpleNamespace(**vars(agentlightning_core))
    root._LAZY, root.__all__ = lazy, list(agentlightning_core.__all__)
    assert export_drift(root, source) == []
    lazy["Tracer"] = "tracer.otel"  # re-exported there, but not where TYPE_CHECKING imports it
    lazy["NotAThing"] = "spans"
    root.__all__.append("Missing")
    assert export_drift(root, source) == [
        "Missing is in __all__ but neither lazy nor defined in the package root",
        "NotAThing is lazily exported but not in __all__",
        "NotAThing: _LAZY says spans, TYPE_CHECKING imports None",
        "Tracer: _LAZY says tracer.otel, TYPE_CHECKING imports tracer.base",
        "NotAThing is not defined in agentlightning_core.spans",
    ]
    dropped = source.replace("    from agentlightning_core.hooks import Hook\n", "")
    assert dropped != source
    root._LAZY = dict(agentlightning_core._LAZY)
    root.__all__ = list(agentlightning_core.__all__)
    assert export_drift(root, dropped) == ["Hook: _LAZY says hooks, TYPE_CHECKING imports None"]


def test_the_new_public_names_are_exported() -> None:
    from agentlightning_core.errors import AgentLightningError
    from agentlightning_core.execution.cs import RunnerProcessError

    assert agentlightning_core.Register is hookspecs.Register
    hints = typing.get_type_hints(agentlightning_core.Trainer.__init__)
    spec: Any = agentlightning_core.ComponentSpec
    assert hints["store"] == spec[agentlightning_core.LightningStore] | None
    assert hints["tracer"] == spec[agentlightning_core.Tracer] | None
    assert typing.get_type_hints(agentlightning_core.resolve_component)["spec"] == spec[Any]
    assert issubclass(RunnerProcessError, AgentLightningError) and issubclass(
        RunnerProcessError, RuntimeError
    )


# --- conformance suites refuse redefined tests -----------------------------------------------


def conformance_suites() -> list[type]:
    """Every ``*Conformance`` class of the ``agentlightning_core.testing`` modules."""
    found: list[type] = []
    for info in pkgutil.iter_modules(agentlightning_core.testing.__path__):
        module = importlib.import_module(f"agentlightning_core.testing.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and value.__name__.endswith("Conformance")
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def replacement() -> Callable[..., None]:
    """A new function each time (marks are stored on the function object)."""

    def test(self: Any) -> None: ...

    return test


def first_test(suite: type) -> str:
    return next(name for name in vars(suite) if name.startswith("test"))


def test_every_conformance_suite_refuses_a_redefined_test() -> None:
    suites = conformance_suites()
    names = {s.__name__ for s in suites}
    assert {
        "StoreConformance",
        "SpanBudgetConformance",
        "TracerConformance",
        "TraceAdapterConformance",
    } <= names
    for suite in suites:
        assert ConformanceSuite in suite.__bases__, f"{suite.__name__} must subclass ConformanceSuite"
        name = first_test(suite)
        with pytest.raises(TypeError, match=rf"TestMine\.{name} redefines a test of {suite.__name__}"):
            type("TestMine", (suite,), {name: replacement()})
        with pytest.raises(TypeError, match=r"mark it @pytest\.mark\.xfail"):
            type("TestMine", (suite,), {name: pytest.mark.xfail(replacement())})  # no reason
        gap = type("TestMine", (suite,), {name: pytest.mark.xfail(reason="known gap")(replacement())})
        assert xfail_reason(vars(gap)[name]) == "known gap"
        # a subclass of an implementation's test class is held to the same rule
        with pytest.raises(TypeError, match=rf"TestDeeper\.{name} redefines"):
            type("TestDeeper", (gap,), {name: replacement()})
        # fixtures and helpers may be added freely
        type("TestFixtures", (suite,), {"helper": replacement(), "tests_run": 0})
