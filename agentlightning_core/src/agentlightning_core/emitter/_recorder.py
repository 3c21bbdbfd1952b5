"""Where emitted spans go: the active tracer, else OpenTelemetry's global provider."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from agentlightning_core.tracer.base import SpanHandle, active_tracer

__all__ = ["open_span"]

logger = logging.getLogger(__name__)


def open_span(name: str, attributes: Mapping[str, Any] | None = None) -> AbstractContextManager[SpanHandle]:
    """A span of the active tracer's current trace; outside any trace context, a span of the
    global OpenTelemetry provider, with a warning: no store will receive it."""
    tracer = active_tracer()
    if tracer is not None:
        return tracer.create_span(name, attributes)
    logger.warning(
        "%s emitted outside any trace context: it goes to the global OpenTelemetry provider and no "
        "Agent Lightning store receives it. Emit inside tracer.trace_context(...) (the runner opens one).",
        name,
    )
    from opentelemetry import trace as otel_trace

    return otel_trace.get_tracer("agentlightning").start_as_current_span(
        name, attributes=dict(attributes) if attributes else None
    )
