"""OpenAI chat messages <-> GenAI semantic-convention messages (``{"role", "parts"}``).

Instrumentation records messages in the conventions' schema; adapters turn them back into
OpenAI chat format. Tool-call arguments stay the exact string the model produced, so the
round trip is lossless for text, tool calls and tool results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["from_semconv_messages", "loads_messages", "to_semconv_message", "to_semconv_messages"]


def _plain(value: Any) -> Any:
    """Pydantic models and other objects with ``model_dump`` become plain dicts."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(exclude_none=True)
    return value


def to_semconv_message(message: Mapping[str, Any] | Any, finish_reason: str | None = None) -> dict[str, Any]:
    """One OpenAI chat message as a semantic-convention message."""
    msg = _plain(message)
    if not isinstance(msg, Mapping):
        raise TypeError(f"A chat message must be a mapping with a 'role', got {message!r}")
    role = msg.get("role", "user")
    parts: list[dict[str, Any]] = []
    content = msg.get("content")
    if role == "tool":
        parts.append({"type": "tool_call_response", "id": msg.get("tool_call_id"), "response": content})
    elif isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for part in content:
            part = _plain(part)
            if isinstance(part, Mapping) and part.get("type") == "text":
                parts.append({"type": "text", "content": part.get("text", "")})
            else:
                parts.append(dict(part) if isinstance(part, Mapping) else {"type": "unknown", "value": part})
    for call in msg.get("tool_calls") or ():
        call = _plain(call)
        fn = call.get("function") or {}
        parts.append(
            {
                "type": "tool_call",
                "id": call.get("id"),
                "name": fn.get("name"),
                "arguments": fn.get("arguments"),
            }
        )
    out: dict[str, Any] = {"role": role, "parts": parts}
    if msg.get("name"):
        out["name"] = msg["name"]
    if finish_reason is not None:
        out["finish_reason"] = finish_reason
    return out


def to_semconv_messages(messages: Iterable[Mapping[str, Any] | Any]) -> list[dict[str, Any]]:
    return [to_semconv_message(m) for m in messages]


def from_semconv_messages(messages: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Semantic-convention messages back to OpenAI chat messages (tool results split out)."""
    out: list[dict[str, Any]] = []
    for msg in messages:
        role = msg.get("role", "user")
        texts: list[str] = []
        other: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        for part in msg.get("parts") or ():
            kind = part.get("type")
            if kind == "text":
                texts.append(str(part.get("content", "")))
            elif kind == "tool_call":
                calls.append(
                    {
                        "id": part.get("id"),
                        "type": "function",
                        "function": {"name": part.get("name"), "arguments": part.get("arguments") or ""},
                    }
                )
            elif kind == "tool_call_response":
                out.append({"role": "tool", "tool_call_id": part.get("id"), "content": part.get("response")})
            else:
                other.append(dict(part))
        if role == "tool" and not (texts or other or calls):
            continue  # its tool results were appended above
        item: dict[str, Any] = {"role": role}
        if other:
            item["content"] = [{"type": "text", "text": t} for t in texts] + other
        elif len(texts) == 1:
            item["content"] = texts[0]
        elif texts:
            item["content"] = [{"type": "text", "text": t} for t in texts]
        else:
            item["content"] = None
        if calls:
            item["tool_calls"] = calls
        if msg.get("name"):
            item["name"] = msg["name"]
        out.append(item)
    return out


def loads_messages(value: Any) -> list[dict[str, Any]] | None:
    """Decode a messages attribute (a JSON string); None when absent or not a JSON list."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value if isinstance(value, list) else None
