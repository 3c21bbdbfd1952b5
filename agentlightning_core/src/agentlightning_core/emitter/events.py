"""Emitters of messages, objects, exceptions and annotations."""

from __future__ import annotations

import json
import traceback
from collections.abc import Mapping
from typing import Any

from agentlightning_core import semconv
from agentlightning_core.emitter._recorder import open_span

__all__ = ["emit_annotation", "emit_exception", "emit_message", "emit_object", "to_attribute"]

_SCALARS = (str, bool, int, float)


def to_attribute(value: Any) -> Any:
    """A value OpenTelemetry accepts as an attribute: scalars and lists of one scalar type as
    they are, anything else as JSON."""
    if isinstance(value, _SCALARS):
        return value
    if (
        isinstance(value, (list, tuple))
        and value
        and isinstance(value[0], _SCALARS)
        and all(type(v) is type(value[0]) for v in value)
    ):
        return list(value)
    return json.dumps(value, ensure_ascii=False, default=str)


def emit_message(message: str, attributes: Mapping[str, Any] | None = None) -> None:
    """Record a free-form text message (e.g. a log line worth keeping with the trace)."""
    if not isinstance(message, str):
        raise TypeError(f"emit_message needs a str, got {type(message).__name__}: {message!r}")
    attrs = {k: to_attribute(v) for k, v in (attributes or {}).items()}
    attrs[semconv.MESSAGE_BODY] = message
    with open_span(semconv.MESSAGE_SPAN, attrs):
        pass


def emit_object(obj: Any, attributes: Mapping[str, Any] | None = None) -> None:
    """Record a JSON-serializable object; raises ``TypeError`` naming it when it is not."""
    try:
        encoded = json.dumps(obj, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"emit_object needs a JSON-serializable object, got {obj!r}: {exc}") from exc
    attrs = {k: to_attribute(v) for k, v in (attributes or {}).items()}
    attrs[semconv.OBJECT_JSON] = encoded
    attrs[semconv.OBJECT_TYPE] = type(obj).__name__
    with open_span(semconv.OBJECT_SPAN, attrs):
        pass


def emit_exception(exc: BaseException, attributes: Mapping[str, Any] | None = None) -> None:
    """Record an exception (type, message and traceback) without raising it."""
    if not isinstance(exc, BaseException):
        raise TypeError(f"emit_exception needs an exception, got {exc!r}")
    attrs = {k: to_attribute(v) for k, v in (attributes or {}).items()}
    attrs[semconv.EXCEPTION_TYPE] = type(exc).__qualname__
    attrs[semconv.EXCEPTION_MESSAGE] = str(exc)
    attrs[semconv.EXCEPTION_STACKTRACE] = "".join(traceback.format_exception(exc))
    with open_span(semconv.EXCEPTION_SPAN, attrs):
        pass


def emit_annotation(annotation: Mapping[str, Any]) -> None:
    """Record key/value annotations (stored as ``agentlightning.annotation.<key>``)."""
    if not isinstance(annotation, Mapping) or not annotation:
        raise ValueError(f"emit_annotation needs a non-empty mapping, got {annotation!r}")
    attrs = {semconv.ANNOTATION_PREFIX + str(k): to_attribute(v) for k, v in annotation.items()}
    with open_span(semconv.ANNOTATION_SPAN, attrs):
        pass
