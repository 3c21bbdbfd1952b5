"""AgentOps' instrumentors, attached to a given ``TracerProvider`` and reported by name."""

from __future__ import annotations

import importlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined,unused-ignore]
    from opentelemetry.sdk.trace import TracerProvider

__all__ = ["Instrumented", "InstrumentorLoadError", "InstrumentorSpec", "catalogue", "instrument"]

logger = logging.getLogger(__name__)

InstrumentorSpec = str | Any
"""A name of AgentOps' catalogue (``"openai"``, ``"anthropic"``, ``"crewai"``, ...), a
``"package.module:Class"`` path of an OpenTelemetry instrumentor, or an instrumentor (class or instance)."""


class InstrumentorLoadError(RuntimeError):
    """An instrumentor could not be loaded or attached; the message names it and why."""


@attrs.define
class Instrumented:
    """What :func:`instrument` attached (by name) and what failed (name -> reason)."""

    active: dict[str, BaseInstrumentor] = attrs.field(factory=dict)
    failed: dict[str, str] = attrs.field(factory=dict)

    def uninstrument(self) -> None:
        for name, instrumentor in reversed(list(self.active.items())):
            try:
                instrumentor.uninstrument()
            except Exception:
                logger.exception("Uninstrumenting %r failed", name)
        self.active.clear()


def catalogue() -> dict[str, dict[str, str]]:
    """AgentOps' instrumentors by name: LLM providers, then agent frameworks (its own table)."""
    from agentops.instrumentation import AGENTIC_LIBRARIES, PROVIDERS

    return {name: dict(config) for name, config in {**PROVIDERS, **AGENTIC_LIBRARIES}.items()}


def _import(path: str) -> Any:
    """``"package.module:Class"`` -> the class."""
    module, _, attribute = path.partition(":")
    try:
        return getattr(importlib.import_module(module), attribute)
    except AttributeError:
        raise ImportError(f"module {module!r} has no attribute {attribute!r}") from None


def _requirement(config: dict[str, str]) -> str:
    package = config.get("package_name") or config["module_name"].rsplit(".", 1)[-1]
    return f"{package}>={config['min_version']}"


def _load(name: str, spec: InstrumentorSpec, known: dict[str, dict[str, str]]) -> BaseInstrumentor:
    from agentops.instrumentation import InstrumentorLoader
    from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined,unused-ignore]

    if isinstance(spec, str) and ":" not in spec:
        config = known.get(spec)
        if config is None:
            raise InstrumentorLoadError(
                f"Unknown AgentOps instrumentor {spec!r}. Available: {', '.join(sorted(known))}; "
                "or pass 'package.module:Class' of an OpenTelemetry instrumentor"
            )
        loader = InstrumentorLoader(**config)
        if not loader.should_activate:
            requirement = _requirement(config)
            raise InstrumentorLoadError(
                f"AgentOps instrumentor {spec!r} needs {requirement}, which is not installed "
                f"(or older). Install it with: pip install '{requirement}'"
            )
        instance: Any = loader.get_instance()
    else:
        target = _import(spec) if isinstance(spec, str) else spec
        instance = target() if isinstance(target, type) else target
    if not isinstance(instance, BaseInstrumentor):
        raise InstrumentorLoadError(
            f"Instrumentor {name!r} is {instance!r}, not an OpenTelemetry BaseInstrumentor"
        )
    return instance


def _name_of(spec: InstrumentorSpec) -> str:
    if isinstance(spec, str):
        return spec
    target = spec if isinstance(spec, type) else type(spec)
    return f"{target.__module__}:{target.__qualname__}"


def instrument(specs: Sequence[InstrumentorSpec] | Literal["auto"], provider: TracerProvider) -> Instrumented:
    """Attach instrumentors to ``provider``.

    ``"auto"``: every instrumentor of AgentOps' catalogue whose library is installed; one that
    fails is logged by name and recorded in :attr:`Instrumented.failed`. A list: each must
    attach, else :class:`InstrumentorLoadError` names it (the ones attached are detached again).
    """
    from agentops.instrumentation import InstrumentorLoader
    from opentelemetry.instrumentation.dependencies import DependencyConflictError

    cause: BaseException
    known = catalogue()
    strict = specs != "auto"
    if specs == "auto":
        specs = [n for n, c in known.items() if InstrumentorLoader(**c).should_activate]
    done = Instrumented()
    for spec in specs:
        name = _name_of(spec)
        try:
            instance = _load(name, spec, known)
            if instance.is_instrumented_by_opentelemetry:
                raise InstrumentorLoadError(
                    f"{type(instance).__name__} is already attached to another tracer provider "
                    "(agentops.init() or another tracer of this process); tear that one down first"
                )
            instance.instrument(tracer_provider=provider, raise_exception_on_conflict=True)
        except DependencyConflictError as exc:
            reason, cause = f"library version conflict: {exc.conflict}", exc
        except InstrumentorLoadError as exc:
            reason, cause = str(exc), exc
        except Exception as exc:
            reason, cause = f"{type(exc).__name__}: {exc}", exc
        else:
            done.active[name] = instance
            continue
        done.failed[name] = reason
        if strict:
            done.uninstrument()
            raise InstrumentorLoadError(f"Instrumentor {name!r} failed to load: {reason}") from cause
        logger.error("AgentOps instrumentor %r failed to load and records nothing: %s", name, reason)
    if done.active:
        logger.info("AgentOps instrumentors attached: %s", ", ".join(done.active))
    return done
