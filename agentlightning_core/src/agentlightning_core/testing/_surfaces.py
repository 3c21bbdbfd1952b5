"""More surfaces of the scripted server (:mod:`agentlightning_core.testing.openai_server`).

``POST /v1/messages`` (Anthropic Messages, JSON or typed SSE events), ``POST /v1/completions``
(legacy text completions), ``POST /v1/embeddings`` (deterministic vectors, float or base64)
and ``GET /v1/models``. Messages and completions answer with the next scripted reply, like
chat completions; embeddings and models take no reply from the script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agentlightning_core.testing.openai_server import Reply, _Handler

__all__ = ["GET_ROUTES", "POST_ROUTES"]

EMBEDDING_DIMENSIONS = 8


def _words(text: Any) -> int:
    return len(text.split()) if isinstance(text, str) and text else 0


def _anthropic_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return " ".join(
        b.get("text", "") for b in content or () if isinstance(b, dict) and b.get("type") == "text"
    )


def _anthropic_usage(reply: Reply, body: dict[str, Any]) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = _words(_anthropic_text(body.get("system"))) + sum(
            _words(_anthropic_text(m.get("content")))
            for m in body.get("messages") or ()
            if isinstance(m, dict)
        )
    completion = reply.completion_tokens if reply.completion_tokens is not None else _words(reply.content)
    return {"input_tokens": prompt, "output_tokens": completion}


def _stop_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_use" if reply.tool_calls else "end_turn")


def _message(mid: str, model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.content is not None:
        content.append({"type": "text", "text": reply.content})
    for i, call in enumerate(reply.tool_calls):
        content.append(
            {
                "type": "tool_use",
                "id": call.id or f"toolu_{i}",
                "name": call.name,
                "input": json.loads(call.arguments or "{}"),
            }
        )
    return {
        "id": mid,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(reply),
        "stop_sequence": None,
        "usage": _anthropic_usage(reply, body),
    }


def _message_events(message: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    usage = message["usage"]
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0},
    }
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            yield (
                "content_block_start",
                {
                    "type": "content_block_start",
                    "index": index,
                    "content_block": {"type": "text", "text": ""},
                },
            )
            words = block["text"].split(" ")
            for i, word in enumerate(words):
                text = word if i == len(words) - 1 else word + " "
                yield (
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text},
                    },
                )
        else:
            empty = {**block, "input": {}}
            yield (
                "content_block_start",
                {"type": "content_block_start", "index": index, "content_block": empty},
            )
            args = json.dumps(block["input"])
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                delta = {"type": "input_json_delta", "partial_json": part}
                yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    end: dict[str, Any] = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    yield (
        "message_delta",
        {"type": "message_delta", "delta": end, "usage": {"output_tokens": usage["output_tokens"]}},
    )
    yield "message_stop", {"type": "message_stop"}


def messages(handler: _Handler, body: dict[str, Any]) -> None:
    """``POST /v1/messages``: the Anthropic Messages API."""
    owner = handler.server_owner
    reply = owner._next_reply(body)
    if reply.status != 200:
        handler._send_json(
            reply.status, {"type": "error", "error": {"type": "api_error", "message": reply.error}}
        )
        return
    message = _message(f"msg_test_{owner._counter}", body.get("model") or owner.model, reply, body)
    if body.get("stream"):
        handler._send_events(_message_events(message))
    else:
        handler._send_json(200, message)


def _prompts(body: dict[str, Any]) -> list[str]:
    prompt = body.get("prompt", "")
    return [p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else [str(prompt)]


def completions(handler: _Handler, body: dict[str, Any]) -> None:
    """``POST /v1/completions``: legacy text completions."""
    owner = handler.server_owner
    reply = owner._next_reply({**body, "messages": [{"role": "user", "content": p} for p in _prompts(body)]})
    if reply.status != 200:
        handler._send_json(reply.status, {"error": {"message": reply.error, "type": "server_error"}})
        return
    cid = f"cmpl-test-{owner._counter}"
    model = body.get("model") or owner.model
    prompt_tokens = (
        reply.prompt_tokens if reply.prompt_tokens is not None else sum(map(_words, _prompts(body)))
    )
    completion_tokens = (
        reply.completion_tokens if reply.completion_tokens is not None else _words(reply.content)
    )
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    reason = reply.finish_reason or "stop"
    base = {"id": cid, "object": "text_completion", "created": int(time.time()), "model": model}
    if not body.get("stream"):
        choice = {"index": 0, "text": reply.content or "", "finish_reason": reason, "logprobs": None}
        handler._send_json(200, {**base, "choices": [choice], "usage": usage})
        return

    def chunks() -> Iterator[tuple[None, dict[str, Any]]]:
        words = (reply.content or "").split(" ")
        for i, word in enumerate(words):
            text = word if i == len(words) - 1 else word + " "
            yield (
                None,
                {**base, "choices": [{"index": 0, "text": text, "finish_reason": None, "logprobs": None}]},
            )
        yield None, {**base, "choices": [{"index": 0, "text": "", "finish_reason": reason, "logprobs": None}]}
        if (body.get("stream_options") or {}).get("include_usage"):
            yield None, {**base, "choices": [], "usage": usage}

    handler._send_events(chunks(), done=True)


def embedding_of(text: str) -> list[float]:
    """The deterministic vector the scripted server gives ``text`` (8 values in [-1, 1))."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:EMBEDDING_DIMENSIONS]]


def embeddings(handler: _Handler, body: dict[str, Any]) -> None:
    """``POST /v1/embeddings``: one vector per input (``encoding_format`` float or base64)."""
    owner = handler.server_owner
    with owner._lock:
        owner.requests.append(body)
    inputs = body.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    data = []
    for i, text in enumerate(texts):
        vector = embedding_of(text if isinstance(text, str) else json.dumps(text))
        value: Any = vector
        if body.get("encoding_format") == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(_words(t) for t in texts if isinstance(t, str))
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    handler._send_json(
        200, {"object": "list", "data": data, "model": body.get("model") or owner.model, "usage": usage}
    )


def models(handler: _Handler) -> None:
    """``GET /v1/models``: the server's model name."""
    model = {
        "id": handler.server_owner.model,
        "object": "model",
        "created": 0,
        "owned_by": "agentlightning-test",
    }
    handler._send_json(200, {"object": "list", "data": [model]})


POST_ROUTES: dict[str, Callable[[_Handler, dict[str, Any]], None]] = {
    "/v1/messages": messages,
    "/v1/completions": completions,
    "/v1/embeddings": embeddings,
}
GET_ROUTES: dict[str, Callable[[_Handler], None]] = {"/v1/models": models}
