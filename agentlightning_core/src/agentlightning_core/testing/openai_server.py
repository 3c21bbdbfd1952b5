"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

A real HTTP server (stdlib ``http.server`` in a thread, ephemeral port) answering
``POST /v1/chat/completions`` and ``POST /v1/responses`` (the Responses API: output items,
typed stream events) with JSON or SSE streams (``"stream": true``), tool calls, usage and
optional token ids, from a queue of scripted replies or a callable. Every request body it
received is kept in :attr:`OpenAIServer.requests`::

    with OpenAIServer(["Hello!", Reply(tool_calls=[ToolCall("get_weather", '{"city": "Paris"}')])]) as server:
        client = openai.OpenAI(base_url=server.base_url, api_key="test")
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import attrs

from agentlightning_core.testing import _surfaces

__all__ = ["OpenAIServer", "Reply", "ToolCall"]


@attrs.define
class ToolCall:
    name: str
    arguments: str = "{}"
    id: str | None = None


@attrs.define
class Reply:
    """One scripted answer. ``status`` other than 200 answers with an OpenAI error body."""

    content: str | None = None
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_token_ids: list[int] | None = None
    token_ids: list[int] | None = None
    status: int = 200
    error: str = "scripted error"


ReplySource = Callable[[dict[str, Any]], "Reply | str"]


def _as_reply(value: Reply | str) -> Reply:
    return value if isinstance(value, Reply) else Reply(content=value)


def _words(text: str | None) -> int:
    return len(text.split()) if text else 0


class OpenAIServer:
    """The server; start it with ``with`` (or :meth:`start`/:meth:`stop`).

    :param replies: replies (``Reply`` or plain strings) served in order, or a callable
        given each request body returning the reply. None echoes the last user message.
    :param model: the model name reported in responses when the request names none.
    """

    def __init__(self, replies: Iterable[Reply | str] | ReplySource | None = None, model: str = "test-model"):
        self.model = model
        self.requests: list[dict[str, Any]] = []
        self._source: ReplySource | None = replies if callable(replies) else None
        self._queue: collections.deque[Reply] | None = (
            None if replies is None or callable(replies) else collections.deque(_as_reply(r) for r in replies)
        )
        self._lock = threading.Lock()
        self._counter = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("OpenAIServer is not started; use `with OpenAIServer(...) as server:`")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``base_url`` to the ``openai`` client."""
        return f"http://127.0.0.1:{self.port}/v1"

    def add_reply(self, reply: Reply | str) -> None:
        with self._lock:
            if self._queue is None:
                self._queue = collections.deque()
            self._queue.append(_as_reply(reply))

    def start(self) -> Self:
        handler = type("OpenAIServerHandler", (_Handler,), {"server_owner": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="openai-test-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- answering -------------------------------------------------------------------------

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        with self._lock:
            self.requests.append(body)
            self._counter += 1
            if self._source is not None:
                return _as_reply(self._source(body))
            if self._queue is None:
                return Reply(content=_last_user_text(body))
            if not self._queue:
                return Reply(
                    status=500, error=f"OpenAIServer: no scripted reply left for request {self._counter}"
                )
            return self._queue.popleft()

    def _completion_id(self) -> str:
        return f"chatcmpl-test-{self._counter}"

    def _response_id(self) -> str:
        return f"resp_test_{self._counter}"


def _last_user_text(body: dict[str, Any]) -> str:
    """The last user message of a chat-completions ``messages`` or a Responses ``input``."""
    if isinstance(body.get("input"), str):
        return str(body["input"])
    items = body.get("messages") or body.get("input") or []
    users = [m for m in items if isinstance(m, dict) and m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    if isinstance(content, list):  # Responses input parts: [{"type": "input_text", "text": ...}]
        texts: list[str] = [
            p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
        ]
        if len(texts) == len(content):
            return "".join(texts)
    return content if isinstance(content, str) else json.dumps(content)


def _tool_call_dicts(reply: Reply) -> list[dict[str, Any]]:
    return [
        {
            "id": call.id or f"call_{i}",
            "type": "function",
            "function": {"name": call.name, "arguments": call.arguments},
        }
        for i, call in enumerate(reply.tool_calls)
    ]


def _usage(reply: Reply, body: dict[str, Any]) -> dict[str, int]:
    prompt = reply.prompt_tokens
    if prompt is None:
        prompt = sum(
            _words(m.get("content")) for m in body.get("messages", []) if isinstance(m.get("content"), str)
        )
    completion = reply.completion_tokens if reply.completion_tokens is not None else _words(reply.content)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _finish_reason(reply: Reply) -> str:
    return reply.finish_reason or ("tool_calls" if reply.tool_calls else "stop")


class _Handler(BaseHTTPRequestHandler):
    server_owner: OpenAIServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        route = _surfaces.GET_ROUTES.get(self.path.rstrip("/"))
        if route is None:
            self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "not_found"}})
        else:
            route(self)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        path = self.path.rstrip("/")
        surface = _surfaces.POST_ROUTES.get(path)
        if surface is not None:
            try:
                body = json.loads(raw)
            except ValueError:
                self._send_json(
                    400, {"error": {"message": "Request body is not JSON", "type": "invalid_request"}}
                )
                return
            surface(self, body)
            return
        if path not in _PATHS:
            self._send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "not_found"}})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send_json(
                400, {"error": {"message": "Request body is not JSON", "type": "invalid_request"}}
            )
            return
        owner = self.server_owner
        reply = owner._next_reply(body)
        if reply.status != 200:
            self._send_json(reply.status, {"error": {"message": reply.error, "type": "server_error"}})
            return
        model = body.get("model") or owner.model
        if path.endswith("/responses"):
            response = _response(owner._response_id(), model, reply, body)
            if body.get("stream"):
                self._send_events((event["type"], event) for event in _response_events(response))
            else:
                self._send_json(200, response)
        elif body.get("stream"):
            self._stream(owner._completion_id(), model, reply, body)
        else:
            self._send_json(200, self._completion(owner._completion_id(), model, reply, body))

    def _completion(self, cid: str, model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.content}
        if reply.tool_calls:
            message["tool_calls"] = _tool_call_dicts(reply)
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": _finish_reason(reply)}
        if reply.token_ids is not None:
            choice["token_ids"] = reply.token_ids
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [choice],
            "usage": _usage(reply, body),
        }
        if reply.prompt_token_ids is not None:
            out["prompt_token_ids"] = reply.prompt_token_ids
        return out

    def _stream(self, cid: str, model: str, reply: Reply, body: dict[str, Any]) -> None:
        self._send_events(((None, chunk) for chunk in _chunks(cid, model, reply, body)), done=True)

    def _send_events(self, events: Iterable[tuple[str | None, dict[str, Any]]], done: bool = False) -> None:
        """An SSE stream; chat completions end with ``[DONE]``, Responses events are named."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        for name, data in events:
            prefix = f"event: {name}\n" if name else ""
            self.wfile.write(f"{prefix}data: {json.dumps(data)}\n\n".encode())
        if done:
            self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


_PATHS = ("/v1/chat/completions", "/chat/completions", "/v1/responses", "/responses")


def _chunks(cid: str, model: str, reply: Reply, body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    created = int(time.time())

    def chunk(
        delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        choice: dict[str, Any] = {"index": 0, "delta": delta, "finish_reason": finish}
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [choice],
        }
        out.update(extra or {})
        return out

    first_extra = {"prompt_token_ids": reply.prompt_token_ids} if reply.prompt_token_ids is not None else {}
    yield chunk({"role": "assistant", "content": ""}, extra=first_extra)
    if reply.content:
        words = reply.content.split(" ")
        for i, word in enumerate(words):
            yield chunk({"content": word if i == len(words) - 1 else word + " "})
    for i, call in enumerate(_tool_call_dicts(reply)):
        args = call["function"]["arguments"]
        half = len(args) // 2
        yield chunk(
            {
                "tool_calls": [
                    {
                        "index": i,
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["function"]["name"], "arguments": args[:half]},
                    }
                ]
            }
        )
        yield chunk({"tool_calls": [{"index": i, "function": {"arguments": args[half:]}}]})
    last = chunk({}, _finish_reason(reply))
    if reply.token_ids is not None:
        last["choices"][0]["token_ids"] = reply.token_ids
    yield last
    if (body.get("stream_options") or {}).get("include_usage"):
        yield {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": _usage(reply, body),
        }


# --- the Responses API -------------------------------------------------------------------------


def _input_words(body: dict[str, Any]) -> int:
    items = body.get("input")
    words = _words(body.get("instructions")) if isinstance(body.get("instructions"), str) else 0
    if isinstance(items, str):
        return words + _words(items)
    for item in items or ():
        content = item.get("content") if isinstance(item, dict) else None
        if isinstance(content, str):
            words += _words(content)
        elif isinstance(content, list):
            words += sum(_words(p.get("text")) for p in content if isinstance(p, dict))
    return words


def _response(rid: str, model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    """A completed ``Response`` object: a message item and one ``function_call`` item per call."""
    output: list[dict[str, Any]] = []
    if reply.content is not None or not reply.tool_calls:
        output.append(
            {
                "type": "message",
                "id": f"msg_{rid}",
                "status": "completed",
                "role": "assistant",
                "content": [
                    {"type": "output_text", "text": reply.content or "", "annotations": [], "logprobs": []}
                ],
            }
        )
    for i, call in enumerate(reply.tool_calls):
        output.append(
            {
                "type": "function_call",
                "id": f"fc_{rid}_{i}",
                "call_id": call.id or f"call_{i}",
                "name": call.name,
                "arguments": call.arguments,
                "status": "completed",
            }
        )
    prompt = reply.prompt_tokens if reply.prompt_tokens is not None else _input_words(body)
    completion = reply.completion_tokens if reply.completion_tokens is not None else _words(reply.content)
    incomplete = reply.finish_reason == "length"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": "incomplete" if incomplete else "completed",
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "error": None,
        "model": model,
        "instructions": body.get("instructions"),
        "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_output_tokens": body.get("max_output_tokens"),
        "previous_response_id": body.get("previous_response_id"),
        "metadata": body.get("metadata") or {},
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": completion,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt + completion,
        },
    }


def _response_events(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The typed stream events of a ``Response``, in the order the OpenAI API sends them."""
    sequence = iter(range(1_000_000))

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    start = {**response, "status": "in_progress", "output": [], "usage": None, "incomplete_details": None}
    yield event("response.created", response=start)
    yield event("response.in_progress", response=start)
    for index, item in enumerate(response["output"]):
        ids = {"item_id": item["id"], "output_index": index}
        if item["type"] == "message":
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "content": []},
            )
            text = item["content"][0]["text"]
            empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield event("response.content_part.added", **ids, content_index=0, part=empty)
            words = text.split(" ") if text else []
            for i, word in enumerate(words):
                delta = word if i == len(words) - 1 else word + " "
                yield event("response.output_text.delta", **ids, content_index=0, delta=delta, logprobs=[])
            yield event("response.output_text.done", **ids, content_index=0, text=text, logprobs=[])
            yield event("response.content_part.done", **ids, content_index=0, part=item["content"][0])
        else:
            args = item["arguments"]
            yield event(
                "response.output_item.added",
                output_index=index,
                item={**item, "status": "in_progress", "arguments": ""},
            )
            half = len(args) // 2
            for delta in (args[:half], args[half:]):
                yield event("response.function_call_arguments.delta", **ids, delta=delta)
            yield event("response.function_call_arguments.done", **ids, arguments=args, name=item["name"])
        yield event("response.output_item.done", output_index=index, item=item)
    final = "response.incomplete" if response["status"] == "incomplete" else "response.completed"
    yield event(final, response=response)
