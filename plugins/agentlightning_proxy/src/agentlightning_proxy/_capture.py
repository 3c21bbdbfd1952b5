"""What a call looked like, as span attributes: request and response bodies of every surface.

Each surface's non-streaming response is read by one function; a stream is first folded
back into that response (:class:`StreamFold`), so both paths record the same attributes.
Messages are recorded in the GenAI conventions' schema, converted from each API's own
shape (Chat Completions, Responses, Anthropic Messages), so the core's adapters read calls
of every surface the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

from agentlightning_core import semconv
from agentlightning_core.tracer.genai import to_semconv_message, to_semconv_messages
from agentlightning_proxy import attributes as pa

__all__ = [
    "CHAT",
    "COMPLETIONS",
    "EMBEDDINGS",
    "MESSAGES",
    "RESPONSES",
    "SURFACES",
    "StreamFold",
    "request_attributes",
    "response_attributes",
    "span_name",
]

CHAT = "chat.completions"
COMPLETIONS = "completions"
RESPONSES = "responses"
EMBEDDINGS = "embeddings"
MESSAGES = "messages"
SURFACES: dict[str, str] = {
    "/v1/chat/completions": CHAT,
    "/v1/completions": COMPLETIONS,
    "/v1/responses": RESPONSES,
    "/v1/embeddings": EMBEDDINGS,
    "/v1/messages": MESSAGES,
}
"""Recorded POST routes (the path after any ``/rollout/{id}/attempt/{id}`` prefix) -> surface."""

_OPERATION = {
    CHAT: "chat",
    RESPONSES: "chat",
    MESSAGES: "chat",
    COMPLETIONS: "text_completion",
    EMBEDDINGS: "embeddings",
}
_SCALARS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_completion_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "max_output_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
}


_content_json: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, default=str).encode
"""JSON text that becomes part of a message (tool-call arguments, a non-text prompt), written
as ``json.dumps(value, ensure_ascii=False, default=str)`` writes it, as a model would see it."""


def _json(value: Any) -> str:
    """An attribute's JSON text, by orjson (compact; ~30x faster than the standard library
    here), or by the standard library for what orjson refuses (integers over 64 bits, keys
    that are not strings)."""
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:  # orjson.JSONEncodeError
        return _content_json(value)


def _loads(data: bytes) -> Any:
    """``json.loads``, by orjson when it can (the same values, several times faster); the standard
    library for what orjson refuses but Python's JSON accepts (NaN, integers over 64 bits)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _int_list(value: Any) -> list[int] | None:
    if isinstance(value, list) and set(map(type, value)) <= {int}:
        return value
    return None


def span_name(surface: str, model: Any) -> str:
    """``chat {model}`` (what the core's adapters look for), ``embeddings {model}``, ..."""
    op = _OPERATION[surface]
    return f"{op} {model}" if isinstance(model, str) and model else op


# --- requests ---------------------------------------------------------------------------


def _text(content: Any) -> str:
    """Text of a content given as a string or a list of text blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict))
    return "" if content is None else _content_json(content)


def _anthropic_message(message: dict[str, Any]) -> dict[str, Any]:
    role = message.get("role", "user")
    content = message.get("content")
    parts: list[dict[str, Any]] = []
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            parts.append({"type": "text", "content": block.get("text", "")})
        elif kind == "tool_use":
            parts.append(
                {
                    "type": "tool_call",
                    "id": block.get("id"),
                    "name": block.get("name"),
                    "arguments": _content_json(block.get("input", {})),
                }
            )
        elif kind == "tool_result":
            parts.append(
                {
                    "type": "tool_call_response",
                    "id": block.get("tool_use_id"),
                    "response": _text(block.get("content")),
                }
            )
        else:
            parts.append(dict(block) if isinstance(block, dict) else {"type": "unknown", "value": block})
    if parts and all(p["type"] == "tool_call_response" for p in parts):
        role = "tool"
    return {"role": role, "parts": parts}


def _anthropic_input(body: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        out.append({"role": "system", "parts": [{"type": "text", "content": _text(system)}]})
    out.extend(_anthropic_message(m) for m in body.get("messages") or () if isinstance(m, dict))
    return out


def _responses_chat(instructions: Any, items: Any) -> list[dict[str, Any]]:
    """Responses ``instructions`` and ``input`` items as OpenAI chat messages (as the tracer reads them)."""
    out: list[dict[str, Any]] = []
    if isinstance(instructions, str):
        out.append({"role": "system", "content": instructions})
    if isinstance(items, str):
        return [*out, {"role": "user", "content": items}]
    for item in items or ():
        if not isinstance(item, dict):
            continue
        kind = item.get("type")
        if kind == "function_call":
            call = {
                "id": item.get("call_id"),
                "type": "function",
                "function": {"name": item.get("name"), "arguments": item.get("arguments")},
            }
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and last.get("tool_calls"):
                last["tool_calls"].append(call)  # the calls of one turn form one assistant message
            else:
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": item.get("output")})
        elif "role" in item:
            content = item.get("content")
            if isinstance(content, list):
                content = [
                    {"type": "text", "text": p.get("text", "")}
                    if isinstance(p, dict) and p.get("type") in ("input_text", "output_text", "text")
                    else p
                    for p in content
                ]
            out.append({"role": item["role"], "content": content})
        else:
            out.append({"role": "user", "content": [item]})
    return out


def _prompt_messages(prompt: Any) -> list[dict[str, Any]]:
    prompts = prompt if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt) else [prompt]
    return [
        {
            "role": "user",
            "parts": [{"type": "text", "content": p if isinstance(p, str) else _content_json(p)}],
        }
        for p in prompts
    ]


_INPUTS: dict[str, Callable[[dict[str, Any]], list[dict[str, Any]] | None]] = {
    CHAT: lambda b: to_semconv_messages(b["messages"]) if isinstance(b.get("messages"), list) else None,
    MESSAGES: _anthropic_input,
    RESPONSES: lambda b: to_semconv_messages(_responses_chat(b.get("instructions"), b.get("input"))),
    COMPLETIONS: lambda b: _prompt_messages(b["prompt"]) if "prompt" in b else None,
    EMBEDDINGS: lambda b: None,
}


def request_attributes(surface: str, body: dict[str, Any], provider: str) -> dict[str, Any]:
    """Attributes of a parsed request body."""
    out: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: _OPERATION[surface],
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.LLM_STREAM: body.get("stream") is True,
        pa.SURFACE: surface,
    }
    model = body.get("model")
    if isinstance(model, str):
        out[semconv.GEN_AI_REQUEST_MODEL] = model
    for key, attr in _SCALARS.items():
        value = body.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[attr] = value
    try:
        messages = _INPUTS[surface](body)
    except (TypeError, AttributeError, KeyError, ValueError) as exc:  # odd shapes stay in the raw body
        messages = None
        out[pa.CAPTURE_ERROR] = f"request messages: {type(exc).__name__}: {exc}"
    if messages is not None:
        out[semconv.GEN_AI_INPUT_MESSAGES] = _json(messages)
    if surface == EMBEDDINGS:
        inputs = body.get("input")
        out[pa.EMBEDDING_INPUTS] = len(inputs) if isinstance(inputs, list) else 1
    tools = body.get("tools")
    if isinstance(tools, list):
        out[semconv.GEN_AI_TOOL_DEFINITIONS] = _json(tools)
    return out


# --- responses --------------------------------------------------------------------------


def _usage(out: dict[str, Any], usage: Any, names: tuple[str, str]) -> None:
    if not isinstance(usage, dict):
        return
    for name, attr in zip(
        names, (semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS), strict=True
    ):
        value = usage.get(name)
        if isinstance(value, int):
            out[attr] = value


def _chat_like_outputs(body: dict[str, Any], out: dict[str, Any], text_key: str | None) -> None:
    outputs: list[dict[str, Any]] = []
    reasons: list[str] = []
    choices = [c for c in body.get("choices") or () if isinstance(c, dict)]
    for choice in choices:
        reason = choice.get("finish_reason")
        message = (
            choice.get("message")
            if text_key is None
            else {"role": "assistant", "content": choice.get(text_key)}
        )
        outputs.append(to_semconv_message(message or {"role": "assistant"}, finish_reason=reason))
        if isinstance(reason, str):
            reasons.append(reason)
    out[semconv.GEN_AI_OUTPUT_MESSAGES] = _json(outputs)
    if reasons:
        out[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
    _usage(out, body.get("usage"), ("prompt_tokens", "completion_tokens"))
    first = choices[0] if choices else {}
    prompt_ids = _int_list(body.get("prompt_token_ids")) or _int_list(first.get("prompt_token_ids"))
    if prompt_ids is not None:
        out[semconv.LLM_PROMPT_TOKEN_IDS] = prompt_ids
    token_ids = _int_list(first.get("token_ids"))
    if token_ids is not None:
        out[semconv.LLM_RESPONSE_TOKEN_IDS] = token_ids
    logprobs = first.get("logprobs")
    if isinstance(logprobs, dict):
        values = logprobs.get("content")
        floats = (
            [t.get("logprob") for t in values if isinstance(t, dict)]
            if isinstance(values, list)
            else logprobs.get("token_logprobs")
        )
        if isinstance(floats, list):
            out[pa.RESPONSE_LOGPROBS] = [
                float(v) if isinstance(v, (int, float)) else float("nan") for v in floats
            ]


def _responses_outputs(body: dict[str, Any], out: dict[str, Any]) -> None:
    """A Response's output items as one assistant message (texts joined, then the tool calls)."""
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for item in body.get("output") or ():
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            texts.extend(
                p.get("text") or p.get("refusal") or ""
                for p in item.get("content") or ()
                if isinstance(p, dict)
            )
        elif kind == "function_call":
            function = {"name": item.get("name"), "arguments": item.get("arguments", "")}
            calls.append({"id": item.get("call_id"), "type": "function", "function": function})
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    incomplete = (body.get("incomplete_details") or {}).get("reason")
    reason = "tool_calls" if calls else "length" if incomplete == "max_output_tokens" else "stop"
    out[semconv.GEN_AI_OUTPUT_MESSAGES] = _json([to_semconv_message(message, finish_reason=reason)])
    out[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    _usage(out, body.get("usage"), ("input_tokens", "output_tokens"))


def _messages_outputs(body: dict[str, Any], out: dict[str, Any]) -> None:
    message = _anthropic_message({"role": "assistant", "content": body.get("content") or []})
    reason = body.get("stop_reason")
    out[semconv.GEN_AI_OUTPUT_MESSAGES] = _json([{**message, "role": "assistant", "finish_reason": reason}])
    if isinstance(reason, str):
        out[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [reason]
    _usage(out, body.get("usage"), ("input_tokens", "output_tokens"))


def response_attributes(surface: str, body: dict[str, Any]) -> dict[str, Any]:
    """Attributes of a parsed (or stream-folded) successful response body."""
    out: dict[str, Any] = {}
    if isinstance(body.get("id"), str):
        out[semconv.GEN_AI_RESPONSE_ID] = body["id"]
    if isinstance(body.get("model"), str):
        out[semconv.GEN_AI_RESPONSE_MODEL] = body["model"]
    try:
        if surface == CHAT:
            _chat_like_outputs(body, out, None)
        elif surface == COMPLETIONS:
            _chat_like_outputs(body, out, "text")
        elif surface == RESPONSES:
            _responses_outputs(body, out)
        elif surface == MESSAGES:
            _messages_outputs(body, out)
        else:
            _usage(out, body.get("usage"), ("prompt_tokens", "completion_tokens"))
    except (TypeError, AttributeError, KeyError, ValueError) as exc:
        out[pa.CAPTURE_ERROR] = f"response: {type(exc).__name__}: {exc}"
    return out


# --- streams ----------------------------------------------------------------------------


class StreamFold:
    """Folds the server-sent events of a stream back into the non-streaming response body.

    :meth:`feed` takes raw bytes as they arrive (events may be split anywhere);
    :attr:`body` is the response rebuilt so far, also after a broken stream.
    """

    def __init__(self, surface: str) -> None:
        self.surface = surface
        self.body: dict[str, Any] = {}
        self.events = 0
        self.bad_events = 0
        self._buffer = b""
        self._choices: dict[int, dict[str, Any]] = {}
        self._blocks: dict[int, dict[str, Any]] = {}
        self._items: dict[int, dict[str, Any]] = {}

    def feed(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        *events, self._buffer = buffer.split(b"\n\n")
        for event in events:
            self._event(event)

    def close(self) -> None:
        """Take an unterminated last event into account."""
        if self._buffer.strip():
            self._event(self._buffer)
        self._buffer = b""

    def _event(self, raw: bytes) -> None:
        lines = [line[5:].lstrip() for line in raw.split(b"\n") if line.startswith(b"data:")]
        if not lines:
            return
        data = b"\n".join(lines)
        if data == b"[DONE]":
            return
        try:
            event = _loads(data)
        except ValueError:
            self.bad_events += 1
            return
        if not isinstance(event, dict):
            self.bad_events += 1
            return
        self.events += 1
        try:
            if self.surface in (CHAT, COMPLETIONS):
                self._chat_chunk(event)
            elif self.surface == RESPONSES:
                self._responses_event(event)
            elif self.surface == MESSAGES:
                self._messages_event(event)
        except (TypeError, AttributeError, KeyError, ValueError):
            self.bad_events += 1

    def _chat_chunk(self, chunk: dict[str, Any]) -> None:
        body = self.body
        for key in ("id", "model", "created", "system_fingerprint"):
            if key in chunk and key not in body:
                body[key] = chunk[key]
        if chunk.get("usage"):
            body["usage"] = chunk["usage"]
        if _int_list(chunk.get("prompt_token_ids")) is not None:
            body["prompt_token_ids"] = chunk["prompt_token_ids"]
        for choice in chunk.get("choices") or ():
            acc = self._choices.get(choice.get("index", 0))
            if acc is None:
                acc = self._choices[choice.get("index", 0)] = {
                    "text": [],
                    "tool_calls": {},
                    "role": "assistant",
                }
                body.setdefault("choices", []).append(acc)
                acc["index"] = choice.get("index", 0)
            delta = choice.get("delta") or {}
            if delta.get("role"):
                acc["role"] = delta["role"]
            piece = delta.get("content") if self.surface == CHAT else choice.get("text")
            if piece:
                acc["text"].append(piece)
            for call in delta.get("tool_calls") or ():
                slot = acc["tool_calls"].setdefault(
                    call.get("index", 0), {"id": None, "name": None, "arguments": []}
                )
                slot["id"] = slot["id"] or call.get("id")
                fn = call.get("function") or {}
                slot["name"] = slot["name"] or fn.get("name")
                if fn.get("arguments"):
                    slot["arguments"].append(fn["arguments"])
            if choice.get("finish_reason"):
                acc["finish_reason"] = choice["finish_reason"]
            ids = _int_list(choice.get("token_ids"))
            if ids is not None:
                acc.setdefault("token_ids", []).extend(ids)
            logprobs = choice.get("logprobs")
            if isinstance(logprobs, dict) and isinstance(logprobs.get("content"), list):
                acc.setdefault("logprobs", {"content": []})["content"].extend(logprobs["content"])

    def folded(self) -> dict[str, Any]:
        """The rebuilt response body."""
        if self.surface not in (CHAT, COMPLETIONS):
            return self.body
        body = dict(self.body)
        choices = []
        for index in sorted(self._choices):
            acc = self._choices[index]
            choice: dict[str, Any] = {"index": index, "finish_reason": acc.get("finish_reason")}
            text = "".join(acc["text"]) or None
            if self.surface == CHAT:
                message: dict[str, Any] = {"role": acc["role"], "content": text}
                if acc["tool_calls"]:
                    message["tool_calls"] = [
                        {
                            "id": s["id"],
                            "type": "function",
                            "function": {"name": s["name"], "arguments": "".join(s["arguments"])},
                        }
                        for _, s in sorted(acc["tool_calls"].items())
                    ]
                choice["message"] = message
            else:
                choice["text"] = text
            for key in ("token_ids", "logprobs"):
                if key in acc:
                    choice[key] = acc[key]
            choices.append(choice)
        body["choices"] = choices
        return body

    def _responses_event(self, event: dict[str, Any]) -> None:
        response = event.get("response")
        if isinstance(response, dict):
            self.body = dict(response)
        item = event.get("item")
        if event.get("type") == "response.output_item.done" and isinstance(item, dict):
            self._items[event.get("output_index", len(self._items))] = item
        if self._items and not self.body.get("output"):
            self.body["output"] = [self._items[i] for i in sorted(self._items)]

    def _messages_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        body = self.body
        if kind == "message_start":
            message = event.get("message") or {}
            body.update({k: v for k, v in message.items() if k != "content"})
            body["content"] = []
        elif kind == "content_block_start":
            block = dict(event.get("content_block") or {})
            if block.get("type") == "tool_use":
                block["_json"] = []
            self._blocks[event.get("index", len(self._blocks))] = block
            body.setdefault("content", []).append(block)
        elif kind == "content_block_delta":
            current = self._blocks.get(event.get("index", 0))
            delta = event.get("delta") or {}
            if current is None:
                return
            if delta.get("type") == "text_delta":
                current["text"] = current.get("text", "") + delta.get("text", "")
            elif delta.get("type") == "input_json_delta":
                current.setdefault("_json", []).append(delta.get("partial_json", ""))
        elif kind == "content_block_stop":
            block = self._blocks.get(event.get("index", 0)) or {}
            if "_json" in block:
                raw = "".join(block.pop("_json"))
                block["input"] = json.loads(raw) if raw else {}
        elif kind == "message_delta":
            body.update(event.get("delta") or {})
            usage = event.get("usage") or {}
            body["usage"] = {**(body.get("usage") or {}), **usage}
