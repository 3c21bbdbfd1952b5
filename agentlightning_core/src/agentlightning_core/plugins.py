"""Plugin loading, the component registry and component resolution.

Nothing is loaded at import time: :func:`get_plugin_manager` loads the built-in plugins and
the ``agentlightning`` entry points on first use. ``AGL_PLUGINS`` (comma-separated entry-point
or distribution names) loads only those; ``AGL_DISABLE_PLUGINS`` skips the ones listed.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from importlib import metadata
from typing import Any, TypeAlias, TypeVar, cast, overload

import attrs
import pluggy

from agentlightning_core import hookspecs
from agentlightning_core._deprecation import warn_deprecated
from agentlightning_core.errors import DuplicateComponentError, PluginLoadError, UnknownComponentError

__all__ = [
    "DEFAULT_PLUGINS",
    "KINDS",
    "ComponentKind",
    "ComponentSpec",
    "PluginInfo",
    "Registration",
    "component_names",
    "get_plugin_manager",
    "get_registry",
    "import_object",
    "install_hint",
    "integration",
    "plugin_infos",
    "registered_plugin",
    "reset_plugins",
    "resolve_component",
]

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "agentlightning"
CORE_DISTRIBUTION = "agentlightning-core"
DEFAULT_PLUGINS: tuple[str, ...] = ("agentlightning_core.builtins",)

T = TypeVar("T")

ComponentSpec: TypeAlias = T | type[T] | Callable[..., T] | str | Mapping[str, Any]
"""What stands for a component of type ``T``: an instance, a class, a factory, a registered
name (``"sqlite"``), a dict ``{"type": name, **kwargs}`` or ``"package.module:Class"``."""


@attrs.frozen
class ComponentKind:
    """A kind of component: its name, plural, registration hook and base class path."""

    name: str
    plural: str
    base_path: str

    @property
    def hook(self) -> str:
        return f"register_{self.plural}"

    @property
    def base(self) -> type:
        return cast(type, import_object(self.base_path))


KINDS: dict[str, ComponentKind] = {
    k.name: k
    for k in (
        ComponentKind("algorithm", "algorithms", "agentlightning_core.algorithm.base:Algorithm"),
        ComponentKind("adapter", "adapters", "agentlightning_core.adapter.base:Adapter"),
        ComponentKind("tracer", "tracers", "agentlightning_core.tracer.base:Tracer"),
        ComponentKind("store", "stores", "agentlightning_core.store.base:LightningStore"),
        ComponentKind(
            "execution_strategy",
            "execution_strategies",
            "agentlightning_core.execution.base:ExecutionStrategy",
        ),
        ComponentKind("runner", "runners", "agentlightning_core.runner.base:Runner"),
    )
}

DEFAULT_NAMES: dict[str, str] = {"adapter": "tracer_triplet"}
"""What a dict spec without ``"type"`` means for kinds whose earlier API had a default (deprecated)."""

# First-party components shipped in their own distributions, for install hints.
FIRST_PARTY: dict[str, dict[str, str]] = {
    "store": {"sqlite": "agentlightning-sqlite"},
    "algorithm": {"apo": "agentlightning-apo", "baseline": "agentlightning-baseline"},
    "tracer": {"agentops": "agentlightning-agentops"},
}
FIRST_PARTY_PATHS: dict[str, str] = {
    "agentlightning-sqlite": "plugins/agentlightning_sqlite",
    "agentlightning-baseline": "plugins/agentlightning_baseline",
    "agentlightning-apo": "agentlightning_apo",
    "agentlightning-agentops": "agentlightning_agentops",
}
"""Where each first-party distribution lives in the repository: none is on PyPI yet, so the
install hint is a path install from a checkout."""


def install_hint(distribution: str, extra: str = "") -> str:
    """The command that installs a first-party ``distribution`` (path install from a checkout)."""
    path = FIRST_PARTY_PATHS.get(distribution, distribution.replace("-", "_"))
    target = f"./{path}" + (f"[{extra}]" if extra else "")
    return (
        f"pip install '{target}' (from the root of an Agent Lightning checkout: "
        f"{distribution} is installed from the repository, not from PyPI)"
    )


@attrs.frozen
class PluginInfo:
    """Where a loaded plugin comes from."""

    name: str
    distribution: str
    version: str
    builtin: bool


@attrs.frozen
class Registration:
    """One registered component name."""

    kind: str
    name: str
    factory: Callable[..., Any] | str
    plugin: PluginInfo

    def load(self) -> Callable[..., Any]:
        """The factory, importing it first if it was registered as a ``"module:attr"`` path."""
        if isinstance(self.factory, str):
            try:
                return cast(Callable[..., Any], import_object(self.factory))
            except ImportError as exc:
                raise PluginLoadError(
                    f"{self.kind} {self.name!r} of plugin {self.plugin.name!r} "
                    f"(distribution {self.plugin.distribution}) failed to import {self.factory!r}: {exc}"
                ) from exc
        return self.factory


_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
_plugin_info: dict[str, PluginInfo] = {}
_registry: dict[str, dict[str, Registration]] | None = None


def import_object(path: str) -> Any:
    """Import ``"package.module:attribute"`` (the attribute may be dotted)."""
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"Expected an import path like 'package.module:Name', got {path!r}")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{path!r}: module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _split_env(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None:
        return None
    return {p.strip() for p in raw.split(",") if p.strip()}


def _core_version() -> str:
    try:
        return metadata.version(CORE_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, loading built-ins and entry points on first call."""
    global _pm
    with _lock:
        if _pm is not None:
            return _pm
        pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        pm.add_hookspecs(hookspecs)
        version = _core_version()
        for module_name in DEFAULT_PLUGINS:
            module = importlib.import_module(module_name)
            pm.register(module, name=module_name)
            _plugin_info[module_name] = PluginInfo(module_name, CORE_DISTRIBUTION, version, builtin=True)
        _load_entry_points(pm)
        pm.check_pending()
        _pm = pm
        return pm


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    only = _split_env("AGL_PLUGINS")
    disabled = _split_env("AGL_DISABLE_PLUGINS") or set()
    installed: set[str] = set()
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = ep.dist
        dist_name = dist.metadata["Name"] if dist is not None else "<unknown distribution>"
        dist_version = dist.version if dist is not None else "?"
        names = {ep.name, dist_name}
        installed |= names
        if (only is not None and not names & only) or names & disabled:
            logger.debug("Skipping plugin %s from %s (AGL_PLUGINS / AGL_DISABLE_PLUGINS)", ep.name, dist_name)
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            raise PluginLoadError(
                f"Plugin {ep.name!r} ({ep.value}) from distribution {dist_name} {dist_version} failed to import: "
                f"{type(exc).__name__}: {exc}. Reinstall or upgrade {dist_name}, or skip it with "
                f"AGL_DISABLE_PLUGINS={ep.name}"
            ) from exc
        pm.register(plugin, name=ep.name)
        _plugin_info[ep.name] = PluginInfo(ep.name, dist_name, dist_version, builtin=False)
    for name in sorted((only or set()) - installed):
        logger.warning(
            "AGL_PLUGINS names %r, which is no installed plugin. Installed plugins (entry point or "
            "distribution names): %s",
            name,
            ", ".join(sorted(installed)) or "(none)",
        )


def reset_plugins() -> None:
    """Forget the loaded plugins; the next use loads them again (e.g. after a pip install)."""
    global _pm, _registry
    with _lock:
        _pm = None
        _registry = None
        _plugin_info.clear()


def _invalidate_registry() -> None:
    global _registry
    with _lock:
        _registry = None


@contextmanager
def registered_plugin(plugin: object, name: str | None = None) -> Iterator[str]:
    """Register ``plugin`` (a module or object with hookimpls) for the duration of the block."""
    pm = get_plugin_manager()
    plugin_name = pm.register(plugin, name=name)
    if plugin_name is None:
        raise ValueError(f"Plugin {name or plugin!r} is blocked or already registered")
    pm.check_pending()
    _plugin_info[plugin_name] = PluginInfo(plugin_name, "<registered in process>", "", builtin=False)
    _invalidate_registry()
    try:
        yield plugin_name
    finally:
        pm.unregister(name=plugin_name)
        _plugin_info.pop(plugin_name, None)
        _invalidate_registry()


def get_registry() -> Mapping[str, Mapping[str, Registration]]:
    """Every registered component: ``{kind: {name: Registration}}``."""
    global _registry
    with _lock:
        if _registry is not None:
            return _registry
        pm = get_plugin_manager()
        registry: dict[str, dict[str, Registration]] = {kind: {} for kind in KINDS}
        for kind in KINDS.values():
            caller = getattr(pm.hook, kind.hook)
            # get_hookimpls() lists plugins in registration order: a duplicate names the earlier first.
            for impl in caller.get_hookimpls():
                info = _plugin_info.get(impl.plugin_name) or PluginInfo(impl.plugin_name, "?", "?", False)
                impl.function(register=_registrar(registry[kind.name], kind, info))
        _registry = registry
        return registry


def _registrar(target: dict[str, Registration], kind: ComponentKind, info: PluginInfo) -> hookspecs.Register:
    def register(name: str, factory: Callable[..., Any] | str) -> None:
        if not isinstance(name, str) or not name or ":" in name:
            raise ValueError(f"Plugin {info.name!r} registered an invalid {kind.name} name {name!r}")
        if not (callable(factory) or isinstance(factory, str)):
            raise TypeError(
                f"Plugin {info.name!r} registered {kind.name} {name!r} with a factory that is neither "
                f"callable nor an import path: {factory!r}"
            )
        previous = target.get(name)
        if previous is not None:
            raise DuplicateComponentError(
                f"{kind.name} {name!r} is registered twice: by plugin {previous.plugin.name!r} "
                f"({previous.plugin.distribution}) and by plugin {info.name!r} ({info.distribution}). "
                f"Uninstall one of them or disable one with AGL_DISABLE_PLUGINS=<plugin name>."
            )
        target[name] = Registration(kind.name, name, factory, info)

    return register


def kind_of(kind: str) -> ComponentKind:
    """Look a kind up by singular or plural name (``"store"`` or ``"stores"``)."""
    found = KINDS.get(kind) or next((k for k in KINDS.values() if k.plural == kind), None)
    if found is None:
        raise ValueError(
            f"Unknown component kind {kind!r}; expected one of: {', '.join(k.plural for k in KINDS.values())} "
            f"(or the singular: {', '.join(KINDS)})"
        )
    return found


def component_names(kind: str) -> list[str]:
    """Sorted names registered for ``kind``."""
    return sorted(get_registry()[kind_of(kind).name])


INTEGRATIONS: dict[str, str] = {"langchain": "agentlightning-langchain"}
"""First-party integrations (``register_integrations``) and their distributions, for install hints."""


def integration(name: str) -> Callable[..., Any]:
    """The factory registered for integration ``name`` (``factory(tracer)``); an error naming
    the distribution to install when no plugin registers it."""
    found: dict[str, tuple[Callable[..., Any] | str, str]] = {}
    for impl in get_plugin_manager().hook.register_integrations.get_hookimpls():

        def register(key: str, factory: Callable[..., Any] | str, plugin: str = impl.plugin_name) -> None:
            if key in found:
                raise DuplicateComponentError(
                    f"integration {key!r} is registered twice: by plugin {found[key][1]!r} and by plugin "
                    f"{plugin!r}. Uninstall one of them or disable one with AGL_DISABLE_PLUGINS=<plugin name>."
                )
            found[key] = (factory, plugin)

        impl.function(register=register)
    if name not in found:
        dist = INTEGRATIONS.get(name)
        hint = (
            f" It is provided by the distribution {dist}, which is not installed. Install it with: "
            f"{install_hint(dist)}"
            if dist
            else ""
        )
        raise UnknownComponentError(
            f"Unknown integration {name!r}. Available integrations: {', '.join(sorted(found)) or '(none)'}.{hint}"
        )
    factory = found[name][0]
    return cast(Callable[..., Any], import_object(factory)) if isinstance(factory, str) else factory


def plugin_infos() -> dict[str, PluginInfo]:
    """Loaded plugins by name."""
    get_registry()
    return dict(_plugin_info)


def _unknown(kind: ComponentKind, name: str) -> UnknownComponentError:
    available = component_names(kind.name)
    listing = ", ".join(available) if available else "(none)"
    msg = f"Unknown {kind.name} {name!r}. Available {kind.plural}: {listing}."
    dist = FIRST_PARTY.get(kind.name, {}).get(name)
    if dist is not None:
        msg += (
            f" {kind.name.capitalize()} {name!r} is provided by the distribution {dist}, which is not "
            f"installed. Install it with: {install_hint(dist)}"
        )
    return UnknownComponentError(msg)


def _factory_for_name(kind: ComponentKind, name: str) -> Callable[..., Any]:
    if ":" in name:
        try:
            return cast(Callable[..., Any], import_object(name))
        except ImportError as exc:
            raise UnknownComponentError(f"Cannot import {kind.name} {name!r}: {exc}") from exc
    reg = get_registry()[kind.name].get(name)
    if reg is None:
        dotted = _dotted_factory(kind, name)
        if dotted is not None:
            return dotted
        raise _unknown(kind, name)
    return reg.load()


def _accepted(factory: Callable[..., Any]) -> str:
    """``". Accepted arguments: a, b"`` from the factory's signature ('' when unreadable)."""
    try:
        params = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return ""
    names = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    return f". Accepted arguments: {', '.join(names) if names else '(none)'}"


def _a(noun: str) -> str:
    """``noun`` with its indefinite article ("an adapter", "a store")."""
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _dotted_factory(kind: ComponentKind, name: str) -> Callable[..., Any] | None:
    """The earlier ``"package.module.Class"`` form (deprecated), when it imports; else None."""
    module_name, _, attr = name.rpartition(".")
    if not module_name or not attr:
        return None
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError):
        return None
    warn_deprecated(
        f"dotted:{name}",
        f"The {kind.name} spec {name!r} uses the earlier dotted form; write {module_name + ':' + attr!r} "
        f"(a colon before the attribute)",
    )
    return cast(Callable[..., Any], factory)


_FORMS = (
    "an instance, a class, a factory, a registered name, a dict {'type': name, **kwargs} "
    "or an import path 'package.module:Class'"
)


def _json_spec(kind: ComponentKind, text: str) -> dict[str, Any]:
    """The earlier JSON-string form of a dict spec (deprecated), as the CLI's ``--store`` takes it."""
    import json

    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise ValueError(
            f"The {kind.name} spec {text!r} starts with '{{' but is not valid JSON: {exc}"
        ) from exc
    if not isinstance(spec, dict):
        raise TypeError(f"The {kind.name} spec {text!r} must be one JSON object")
    warn_deprecated(
        f"json:{kind.name}",
        f"{_a(kind.name).capitalize()} given as a JSON string is the earlier form; give the dict itself: {kind.name}={spec!r}",
    )
    return spec


@overload
def resolve_component(kind: str, spec: ComponentSpec[T], *, base: type[T], **defaults: Any) -> T: ...
@overload
def resolve_component(kind: str, spec: ComponentSpec[Any], **defaults: Any) -> Any: ...
def resolve_component(
    kind: str, spec: ComponentSpec[Any], *, base: type[Any] | None = None, **defaults: Any
) -> Any:
    """Turn a component spec into a component of ``kind``.

    ``spec`` is an instance, a class, a factory, a registered name (``"sqlite"``), a dict
    ``{"type": name, **kwargs}`` or ``"package.module:Class"``. ``defaults`` are keyword
    arguments for the constructor, overridden by a dict spec's own. The result is checked
    against the kind's base class.
    """
    k = kind_of(kind)
    expected = base or k.base
    if isinstance(spec, expected):
        return spec
    kwargs = dict(defaults)
    if isinstance(spec, str) and spec.lstrip().startswith("{"):
        spec = _json_spec(k, spec)
    if isinstance(spec, str):
        factory = _factory_for_name(k, spec)
    elif isinstance(spec, Mapping):
        spec = dict(spec)
        type_name = spec.pop("type", None)
        if type_name is None and k.name in DEFAULT_NAMES:
            type_name = DEFAULT_NAMES[k.name]
            warn_deprecated(
                f"untyped:{k.name}",
                f"{_a(k.name).capitalize()} dict without 'type' is the earlier form of the default {k.name}; write "
                f"{{'type': {type_name!r}, ...}}",
            )
        if not isinstance(type_name, str):
            names = component_names(k.name)
            example = f", e.g. {{'type': {names[0]!r}}}" if names else ""
            raise TypeError(
                f"{_a(k.name).capitalize()} given as a dict needs a 'type' key naming it{example}; got {spec!r}"
            )
        factory = _factory_for_name(k, type_name)
        kwargs.update(spec)
    elif callable(spec):
        factory = spec
    else:
        raise TypeError(f"Cannot make {_a(k.name)} from {spec!r}; give {_FORMS}.")
    if inspect.isclass(factory) and not issubclass(factory, expected):
        raise TypeError(
            f"{factory.__module__}.{factory.__qualname__} is not {_a(k.name)}: it does not subclass {expected.__name__}"
        )
    try:
        component = factory(**kwargs)
    except TypeError as exc:
        raise TypeError(
            f"Cannot create {k.name} from {spec!r} with arguments {sorted(kwargs)}: {exc}"
            + _accepted(factory)
        ) from exc
    if not isinstance(component, expected):
        raise TypeError(
            f"{k.name} factory {spec!r} returned {type(component).__name__}, which is not {_a(expected.__name__)}"
        )
    return component
