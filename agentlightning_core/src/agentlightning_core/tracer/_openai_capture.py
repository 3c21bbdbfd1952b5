"""Capture of ``openai`` LLM calls as GenAI semantic-convention spans.

:func:`instrument_openai` wraps ``create`` and ``parse`` of the chat-completions and
Responses resources of the installed ``openai`` package, sync and async (reference-counted;
:func:`uninstrument_openai` restores them). Everything the client offers on top goes through
those methods and is covered: ``with_raw_response`` and ``with_streaming_response`` (the
response is recorded when the client parses it), and the ``.stream()`` helpers. A call made
inside a trace context of a tracer with an OpenTelemetry tracer (its ``otel_tracer``
attribute) records one span ``chat {model}`` with the request, the response, usage and,
when the server returns them, token ids. Streams are wrapped so the span ends when the
stream is exhausted or closed. Calls outside a trace context pass through untouched.

A ``with_raw_response`` accessor the program created before instrumentation keeps the
methods it was bound to, so its calls are not recorded (``openai`` caches the accessor on
the resource).
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
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
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}


def _otel_tracer() -> otel_trace.Tracer | None:
    tracer = getattr(active_tracer(), "otel_tracer", None)
    return tracer if isinstance(tracer, otel_trace.Tracer) else None


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _dump(value: Any) -> Any:
    """Pydantic models as plain dicts (``parsed`` fields of structured outputs dump silently)."""
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True, warnings=False) if callable(dump) else value


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, (list, tuple)) and set(map(type, value)) <= {int}:
        return list(value)
    return None


def _common_request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
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
    tools = kwargs.get("tools")
    if isinstance(tools, (list, tuple)):
        attrs[semconv.GEN_AI_TOOL_DEFINITIONS] = _json([_dump(t) for t in tools])
    return attrs


def _response_attributes(
    *,
    response_id: Any,
    model: Any,
    outputs: list[dict[str, Any]],
    finish_reasons: list[str],
    input_tokens: Any,
    output_tokens: Any,
    prompt_token_ids: list[int] | None = None,
    response_token_ids: list[int] | None = None,
) -> dict[str, Any]:
    attrs: dict[str, Any] = {semconv.GEN_AI_OUTPUT_MESSAGES: _json(outputs)}
    if isinstance(response_id, str):
        attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
    if isinstance(model, str):
        attrs[semconv.GEN_AI_RESPONSE_MODEL] = model
    if finish_reasons:
        attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = finish_reasons
    if isinstance(input_tokens, int):
        attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = input_tokens
    if isinstance(output_tokens, int):
        attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = output_tokens
    if prompt_token_ids is not None:
        attrs[semconv.LLM_PROMPT_TOKEN_IDS] = prompt_token_ids
    if response_token_ids is not None:
        attrs[semconv.LLM_RESPONSE_TOKEN_IDS] = response_token_ids
    return attrs


# --- chat completions ----------------------------------------------------------------------


class _ChatAccumulator:
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
            input_tokens=getattr(self.usage, "prompt_tokens", None),
            output_tokens=getattr(self.usage, "completion_tokens", None),
            prompt_token_ids=self.prompt_token_ids,
            response_token_ids=first["token_ids"] if first else None,
        )


class _ChatApi:
    """``chat.completions``: messages in, choices out."""

    accumulator = _ChatAccumulator

    @staticmethod
    def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        attrs = _common_request_attributes(kwargs)
        messages = kwargs.get("messages")
        if isinstance(messages, (list, tuple)):
            try:
                attrs[semconv.GEN_AI_INPUT_MESSAGES] = _json(to_semconv_messages(messages))
            except TypeError as exc:
                logger.warning("Could not record the prompt messages of an openai call: %s", exc)
        return attrs

    @staticmethod
    def result_attributes(result: Any) -> dict[str, Any] | None:
        """Attributes of a ``ChatCompletion``; None for other results."""
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
        usage = getattr(result, "usage", None)
        return _response_attributes(
            response_id=getattr(result, "id", None),
            model=getattr(result, "model", None),
            outputs=outputs,
            finish_reasons=reasons,
            input_tokens=getattr(usage, "prompt_tokens", None),
            output_tokens=getattr(usage, "completion_tokens", None),
            prompt_token_ids=prompt_ids,
            response_token_ids=_int_list(getattr(choices[0], "token_ids", None)) if choices else None,
        )


# --- the Responses API ---------------------------------------------------------------------


def _part_text(part: Any) -> Any:
    part = _dump(part)
    if isinstance(part, Mapping) and part.get("type") in ("input_text", "output_text", "text"):
        return {"type": "text", "text": part.get("text", "")}
    return part


def _responses_input(instructions: Any, items: Any) -> list[dict[str, Any]]:
    """Responses ``instructions`` and ``input`` items as OpenAI chat messages."""
    messages: list[dict[str, Any]] = []
    if isinstance(instructions, str):
        messages.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for raw in items if isinstance(items, Iterable) else ():
        item = _dump(raw)
        if not isinstance(item, Mapping):
            continue
        kind = item.get("type")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            messages.append(
                {"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")}
            )
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [_part_text(p) for p in content]
            messages.append({"role": item["role"], "content": content})
        else:
            messages.append({"role": "user", "content": [dict(item)]})
    return messages


def _responses_result_attributes(result: Any) -> dict[str, Any] | None:
    """Attributes of a ``Response``: its output items as one assistant message."""
    output = getattr(result, "output", None)
    if not isinstance(output, list) or getattr(result, "object", "response") != "response":
        return None
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in output:
        kind = getattr(item, "type", None)
        if kind == "message":
            texts.extend(
                getattr(part, "text", "") or getattr(part, "refusal", "") or ""
                for part in getattr(item, "content", None) or ()
            )
        elif kind == "function_call":
            calls.append(
                {
                    "id": getattr(item, "call_id", None),
                    "type": "function",
                    "function": {
                        "name": getattr(item, "name", None),
                        "arguments": getattr(item, "arguments", ""),
                    },
                }
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    incomplete = getattr(getattr(result, "incomplete_details", None), "reason", None)
    reason = "tool_calls" if calls else "length" if incomplete == "max_output_tokens" else "stop"
    usage = getattr(result, "usage", None)
    return _response_attributes(
        response_id=getattr(result, "id", None),
        model=getattr(result, "model", None),
        outputs=[to_semconv_message(message, finish_reason=reason)],
        finish_reasons=[reason],
        input_tokens=getattr(usage, "input_tokens", None),
        output_tokens=getattr(usage, "output_tokens", None),
    )


class _ResponsesAccumulator:
    """The final ``Response`` of a Responses stream (or its text deltas, if it never came)."""

    _FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})

    def __init__(self) -> None:
        self.response: Any = None
        self.final = False
        self.text: list[str] = []

    def add(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            self.text.append(getattr(event, "delta", ""))
        elif kind in self._FINAL or (kind == "response.created" and not self.final):
            self.response = getattr(event, "response", None)
            self.final = kind in self._FINAL

    def attributes(self) -> dict[str, Any]:
        if self.final and (attrs := _responses_result_attributes(self.response)) is not None:
            return attrs
        message = {"role": "assistant", "content": "".join(self.text)}
        return _response_attributes(
            response_id=getattr(self.response, "id", None),
            model=getattr(self.response, "model", None),
            outputs=[to_semconv_message(message)],
            finish_reasons=[],
            input_tokens=None,
            output_tokens=None,
        )


class _ResponsesApi:
    """``responses``: instructions and input items in, output items out."""

    accumulator = _ResponsesAccumulator
    result_attributes = staticmethod(_responses_result_attributes)

    @staticmethod
    def request_attributes(kwargs: Mapping[str, Any]) -> dict[str, Any]:
        attrs = _common_request_attributes(kwargs)
        try:
            messages = _responses_input(kwargs.get("instructions"), kwargs.get("input"))
            attrs[semconv.GEN_AI_INPUT_MESSAGES] = _json(to_semconv_messages(messages))
        except TypeError as exc:
            logger.warning("Could not record the input of an openai responses call: %s", exc)
        return attrs


_Api = type[_ChatApi] | type[_ResponsesApi]


# --- spans, streams and raw responses ------------------------------------------------------


def _fail(span: otel_trace.Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(otel_trace.Status(otel_trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _finish(span: otel_trace.Span, api: _Api, result: Any) -> None:
    try:
        attrs = api.result_attributes(result)
    except Exception:
        logger.exception("Could not record the response of an openai call")
        attrs = None
    if attrs:
        span.set_attributes(attrs)
    span.end()


class _TracedStreamBase:
    def __init__(self, stream: Any, span: otel_trace.Span, api: _Api) -> None:
        self._stream = stream
        self._span = span
        self._acc = api.accumulator()
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


class _Recorder:
    """Records what one call returned, once: a parsed object ends the span, a stream is
    wrapped so the span ends with it (the same wrapper for every later ``parse()``)."""

    def __init__(self, span: otel_trace.Span, api: _Api, streaming: bool) -> None:
        self.span = span
        self.api = api
        self.streaming = streaming  # the request asked for a stream
        self.done = False
        self.stream: Any = None

    def observe(self, parsed: Any) -> Any:
        from openai import AsyncStream, Stream

        if self.stream is not None:
            return self.stream
        if self.done:
            return parsed
        self.done = True
        if isinstance(parsed, Stream):
            self.stream = _TracedStream(parsed, self.span, self.api)
            return self.stream
        if isinstance(parsed, AsyncStream):
            self.stream = _TracedAsyncStream(parsed, self.span, self.api)
            return self.stream
        _finish(self.span, self.api, parsed)
        return parsed

    def end_unread(self) -> None:
        if not self.done:
            self.done = True
            self.span.end()


def _track_legacy(raw: Any, recorder: _Recorder) -> Any:
    """``with_raw_response``: the body is parsed now (``openai`` caches the result, so the
    program's own ``parse()`` returns the same object); a stream is returned wrapped."""
    original = raw.parse
    try:
        parsed = recorder.observe(original())
    except Exception:
        logger.debug("Could not parse a raw openai response; its span has no response", exc_info=True)
        recorder.end_unread()
        return raw
    if recorder.stream is not None:

        def parse(*, to: Any = None) -> Any:
            return original(to=to) if to is not None else parsed

        raw.parse = parse
    return raw


def _track_sync_response(raw: Any, recorder: _Recorder) -> Any:
    """``with_streaming_response`` (sync): recorded on ``parse()``, or on ``close()``."""
    original_parse, original_close = raw.parse, raw.close

    def parse(*, to: Any = None) -> Any:
        if to is not None:
            return original_parse(to=to)
        return recorder.observe(original_parse())

    def close() -> None:
        if not recorder.done and not recorder.streaming:
            try:
                parse()
            except Exception:
                logger.debug(
                    "The body of a streamed openai response was not readable at close", exc_info=True
                )
        recorder.end_unread()
        original_close()

    raw.parse, raw.close = parse, close
    return raw


def _track_async_response(raw: Any, recorder: _Recorder) -> Any:
    """``with_streaming_response`` (async): recorded on ``await parse()``, or on ``close()``."""
    original_parse, original_close = raw.parse, raw.close

    async def parse(*, to: Any = None) -> Any:
        if to is not None:
            return await original_parse(to=to)
        return recorder.observe(await original_parse())

    async def close() -> None:
        if not recorder.done and not recorder.streaming:
            try:
                await parse()
            except Exception:
                logger.debug(
                    "The body of a streamed openai response was not readable at close", exc_info=True
                )
        recorder.end_unread()
        await original_close()

    raw.parse, raw.close = parse, close
    return raw


def _record_result(span: otel_trace.Span, api: _Api, result: Any, streaming: bool) -> Any:
    """What the wrapped method returns: ``result``, or a wrapper that ends ``span``."""
    from openai._legacy_response import LegacyAPIResponse
    from openai._response import APIResponse, AsyncAPIResponse

    recorder = _Recorder(span, api, streaming)
    if isinstance(result, LegacyAPIResponse):
        return _track_legacy(result, recorder)
    if isinstance(result, APIResponse):
        return _track_sync_response(result, recorder)
    if isinstance(result, AsyncAPIResponse):
        return _track_async_response(result, recorder)
    return recorder.observe(result)


def _start(otel: otel_trace.Tracer, api: _Api, kwargs: Mapping[str, Any]) -> otel_trace.Span:
    model = kwargs.get("model")
    name = f"chat {model}" if isinstance(model, str) else "chat"
    return otel.start_span(name, kind=otel_trace.SpanKind.CLIENT, attributes=api.request_attributes(kwargs))


def _wrap_sync(original: Callable[..., Any], api: _Api) -> Callable[..., Any]:
    @functools.wraps(original)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        otel = _otel_tracer()
        if otel is None:
            return original(self, *args, **kwargs)
        span = _start(otel, api, kwargs)
        kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), semconv.TRACED_HEADER: "1"}
        try:
            with otel_trace.use_span(span, end_on_exit=False, record_exception=False):
                result = original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        return _record_result(span, api, result, kwargs.get("stream") is True)

    return call


def _wrap_async(original: Callable[..., Any], api: _Api) -> Callable[..., Any]:
    @functools.wraps(original)
    async def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        otel = _otel_tracer()
        if otel is None:
            return await original(self, *args, **kwargs)
        span = _start(otel, api, kwargs)
        kwargs["extra_headers"] = {**(kwargs.get("extra_headers") or {}), semconv.TRACED_HEADER: "1"}
        try:
            with otel_trace.use_span(span, end_on_exit=False, record_exception=False):
                result = await original(self, *args, **kwargs)
        except BaseException as exc:
            _fail(span, exc)
            span.end()
            raise
        return _record_result(span, api, result, kwargs.get("stream") is True)

    return call


# (module, class, is_async, api): every class's ``create`` and ``parse`` are wrapped
_TARGETS: tuple[tuple[str, str, bool, _Api], ...] = (
    ("openai.resources.chat.completions", "Completions", False, _ChatApi),
    ("openai.resources.chat.completions", "AsyncCompletions", True, _ChatApi),
    ("openai.resources.responses", "Responses", False, _ResponsesApi),
    ("openai.resources.responses", "AsyncResponses", True, _ResponsesApi),
)


def instrument_openai() -> bool:
    """Wrap the ``openai`` LLM-call methods; False when ``openai`` is not installed."""
    global _refs
    try:
        classes = [(getattr(importlib.import_module(m), c), a, api) for m, c, a, api in _TARGETS]
    except ImportError:
        logger.debug("openai is not installed; its calls are not captured")
        return False
    with _lock:
        _refs += 1
        if _refs == 1:
            for cls, is_async, api in classes:
                for name in ("create", "parse"):
                    original = getattr(cls, name, None)
                    if original is None:
                        continue
                    _originals[(cls, name)] = original
                    setattr(cls, name, (_wrap_async if is_async else _wrap_sync)(original, api))
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
