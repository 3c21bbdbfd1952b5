"""Capture of ``openai`` chat-completion calls as GenAI semantic-convention spans.

:func:`instrument_openai` wraps ``Completions.create`` and ``AsyncCompletions.create`` of
the installed ``openai`` package (reference-counted; :func:`uninstrument_openai` restores
them). A call made inside a trace context of a tracer with an OpenTelemetry tracer (its
``otel_tracer`` attribute) records one span ``chat {model}`` with the request, the
response, usage and, when the server returns them, token ids. Streams are wrapped so the
span ends when the stream is exhausted or closed. Calls outside a trace context pass
through untouched.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import trace as otel_trace

from agentlightning_core import semconv
from agentlightning_core.tracer.base import active_tracer
from agentlightning_core.tracer.genai import to_semconv_message, to_semconv_messages

__all__ = ["instrument_openai", "is_instrumented", "uninstrument_openai"]

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_refs = 0
_originals: dict[tuple[type, str], Callable[..., Any]] = {}

_SCALAR_REQUEST_ATTRS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}


def _otel_tracer() -> otel_trace.Tracer | None:
    tracer = getattr(active_tracer(), "otel_tracer", None)
    return tracer if isinstance(tracer, otel_trace.Tracer) else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    model = kwargs.get("model")
    attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: "openai",
        semconv.LLM_STREAM: kwargs.get("stream") is True,
    }
    if isinstance(model, str):
        attrs[semconv.GEN_AI_REQUEST_MODEL] = model
    for key, attr in _SCALAR_REQUEST_ATTRS.items():
        value = kwargs.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    messages = kwargs.get("messages")
    if isinstance(messages, (list, tuple)):
        try:
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = _json(to_semconv_messages(messages))
        except TypeError as exc:
            logger.warning("Could not record the prompt messages of an openai call: %s", exc)
    tools = kwargs.get("tools")
    if isinstance(tools, (list, tuple)):
        attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = _json([_dump(t) for t in tools])
    return attrs


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and set(map(type, value)) <= {int}:
        return list(value)
    return None


def _response_attributes(
    *,
    response_id: Any,
    model: Any,
    outputs: list[dict[str, Any]],
    finish_reasons: list[str],
    usage: Any,
    prompt_token_ids: list[int] | None,
    response_token_ids: list[int] | None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.GEN_AI_OUTPUT_MESSAGES: _json(outputs)}
    if isinstance(response_id, str):
        attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str):
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = model
    if finish_reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = finish_reasons
    if usage is not None:
        for name, attr in (
            ("prompt_tokens", semconv.GEN_AI_USAGE_INPUT_TOKENS),
            ("completion_tokens", semconv.GEN_AI_USAGE_OUTPUT_TOKENS),
        ):
            value = getattr(usage, name, None)
            if isinstance(value, int):
                attrs[attr] = value
    if prompt_token_ids is not None:
        attrs[semconv.LLM_PROMPT_TOKEN_IDS] = prompt_token_ids
    if response_token_ids is not None:
        attrs[semconv.LLM_RESPONSE_TOKEN_IDS] = response_token_ids
    return attrs


def _completion_attributes(result: Any) -> dict[str, Any] | None:
    """Attributes of a ``ChatCompletion``; None for other results (e.g. raw responses)."""
    choices = getattr(result, "choices", None)
    if not isinstance(choices, list):
        return None
    outputs, reasons = [], []
    for choice in choices:
        reason = getattr(choice, "finish_reason", None)
        outputs.append(to_semconv_message(_dump(choice.message), finish_reason=reason))
        if isinstance(reason, str):
            reasons.append(reason)
    prompt_ids = _int_list(getattr(result, "prompt_token_ids", None))
    if prompt_ids is None and choices:
        prompt_ids = _int_list(getattr(choices[0], "prompt_token_ids", None))
    return _response_attributes(
        response_id=getattr(result, "id", None),
        model=getattr(result, "model", None),
        outputs=outputs,
        finish_reasons=reasons,
        usage=getattr(result, "usage", None),
        prompt_token_ids=prompt_ids,
        response_token_ids=_int_list(getattr(choices[0], "token_ids", None)) if choices else None,
    )


def _fail(span: otel_trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


class _StreamAccumulator:
    """Rebuilds the response of a streamed chat completion from its chunks."""

    def __init__(self) -> None:
        self.response_id: Any = None
        self.model: Any = None
        self.usage: Any = None
        self.prompt_token_ids: list[int] | None = None
        self.choices: dict[int, dict[str, Any]] = {}

    def add(self, chunk: Any) -> None:
        self.response_id = self.response_id or getattr(chunk, "id", None)
        self.model = self.model or getattr(chunk, "model", None)
        if getattr(chunk, "usage", None) is not None:
            self.usage = chunk.usage
        ids = _int_list(getattr(chunk, "prompt_token_ids", None))
        if ids is not None:
            self.prompt_token_ids = ids
        for choice in getattr(chunk, "choices", None) or ():
            acc = self.choices.setdefault(
                getattr(choice, "index", 0),
                {
                    "role": "assistant",
                    "content": [],
                    "tool_calls": {},
                    "finish_reason": None,
                    "token_ids": None,
                },
            )
            delta = getattr(choice, "delta", None)
            if delta is not None:
                if getattr(delta, "role", None):
                    acc["role"] = delta.role
                if getattr(delta, "content", None):
                    acc["content"].append(delta.content)
                for call in getattr(delta, "tool_calls", None) or ():
                    slot = acc["tool_calls"].setdefault(
                        call.index, {"id": None, "name": None, "arguments": []}
                    )
                    slot["id"] = slot["id"] or call.id
                    fn = call.function
                    if fn is not None:
                        slot["name"] = slot["name"] or fn.name
                        if fn.arguments:
                            slot["arguments"].append(fn.arguments)
            if getattr(choice, "finish_reason", None):
                acc["finish_reason"] = choice.finish_reason
            token_ids = _int_list(getattr(choice, "token_ids", None))
            if token_ids is not None:
                acc["token_ids"] = (acc["token_ids"] or []) + token_ids

    def attributes(self) -> dict[str, Any]:
        outputs, reasons = [], []
        for index in sorted(self.choices):
            acc = self.choices[index]
            message: dict[str, Any] = {"role": acc["role"], "content": "".join(acc["content"]) or None}
            if acc["tool_calls"]:
                message["tool_calls"] = [
                    {
                        "id": slot["id"],
                        "type": "function",
                        "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
                    }
                    for _, slot in sorted(acc["tool_calls"].items())
                ]
            outputs.append(to_semconv_message(message, finish_reason=acc["finish_reason"]))
            if acc["finish_reason"]:
                reasons.append(acc["finish_reason"])
        first = self.choices.get(min(self.choices)) if self.choices else None
        return _response_attributes(
            response_id=self.response_id,
            model=self.model,
            outputs=outputs,
            finish_reasons=reasons,
            usage=self.usage,
            prompt_token_ids=self.prompt_token_ids,
            response_token_ids=first["token_ids"] if first else None,
        )


class _TracedStreamBase:
    def __init__(self, stream: Any, span: otel_trace.Span) -> None:
        self._stream = stream
        self._span = span
        self._acc = _StreamAccumulator()
        self._ended = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _end(self, exc: BaseException | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        try:
            self._span.set_attributes(self._acc.attributes())
        except Exception:  # recording must never break the agent
            logger.exception("Could not record the streamed response of an openai call")
        if exc is not None:
            _fail(self._span, exc)
        self._span.end()

    def __del__(self) -> None:
        if not getattr(self, "_ended", True):
            self._end()


class _TracedStream(_TracedStreamBase):
    def __iter__(self) -> _TracedStream:
        return self

    def __next__(self) -> Any:
        try:
            chunk = next(self._stream)
        except StopIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._acc.add(chunk)
        return chunk

    def __enter__(self) -> _TracedStream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def close(self) -> None:
        self._end()
        self._stream.close()


class _TracedAsyncStream(_TracedStreamBase):
    def __aiter__(self) -> _TracedAsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self._stream.__anext__()
        except StopAsyncIteration:
            self._end()
            raise
        except BaseException as exc:
            self._end(exc)
            raise
        self._acc.add(chunk)
        return chunk

    async def __aenter__(self) -> _TracedAsyncStream:
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()

    async def close(self) -> None:
        self._end()
        await self._stream.close()

    async def aclose(self) -> None:
        await self.close()


def _start(otel: otel_trace.Tracer, kwargs: Mapping[str, Any]) -> otel_trace.Span:
    model = kwargs.get("model")
    name = f"chat {model}" if isinstance(model, str) else "chat"
    return otel.start_span(name, kind=otel_trace.SpanKind.CLIENT, attributes=_request_attributes(kwargs))


def _finish(span: otel_trace.Span, result: Any) -> None:
    try:
        attrs = _completion_attributes(result)
    except Exception:
        logger.exception("Could not record the response of an openai call")
        attrs = None
    if attrs:
        span.set_attributes(attrs)
    span.end()


def _wrap_sync(original: Callable[..., Any]) -> Callable[..., Any]:
    from openai import Stream

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        otel = _otel_tracer()
        if otel is None:
            return original(self, *args, **kwargs)
        span = _start(otel, kwargs)
        try:
            with otel_trace.use_span(span, end_on_exit=False, record_exception=False):
                result = original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        if isinstance(result, Stream):
            return _TracedStream(result, span)
        _finish(span, result)
        return result

    return create


def _wrap_async(original: Callable[..., Any]) -> Callable[..., Any]:
    from openai import AsyncStream

    @functools.wraps(original)
    async def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        otel = _otel_tracer()
        if otel is None:
            return await original(self, *args, **kwargs)
        span = _start(otel, kwargs)
        try:
            with otel_trace.use_span(span, end_on_exit=False, record_exception=False):
                result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        if isinstance(result, AsyncStream):
            return _TracedAsyncStream(result, span)
        _finish(span, result)
        return result

    return create


def instrument_openai() -> bool:
    """Wrap the ``openai`` chat-completion methods; False when ``openai`` is not installed."""
    global _refs
    try:
        from openai.resources.chat.completions import AsyncCompletions, Completions
    except ImportError:
        logger.debug("openai is not installed; its calls are not captured")
        return False
    with _lock:
        _refs += 1
        if _refs == 1:
            for cls, wrap in ((Completions, _wrap_sync), (AsyncCompletions, _wrap_async)):
                original = cls.create
                _originals[(cls, "create")] = original
                cls.create = wrap(original)  # type: ignore[method-assign]
    return True


def uninstrument_openai() -> None:
    """Undo one :func:`instrument_openai`; the last one restores the original methods."""
    global _refs
    with _lock:
        if _refs == 0:
            return
        _refs -= 1
        if _refs == 0:
            for (cls, name), original in _originals.items():
                setattr(cls, name, original)
            _originals.clear()


def is_instrumented() -> bool:
    with _lock:
        return _refs > 0
