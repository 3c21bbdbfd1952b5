"""The opt-in export to AgentOps: only with export_to_agentops=True and an API key, here against
a local stand-in for AgentOps' API and OTLP endpoint on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import agentops
import pytest

from agentlightning_agentops import AgentOpsExportError, AgentOpsTracer


class _AgentOpsStandIn(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.auth_requests: list[dict[str, Any]] = []
        self.exports: list[tuple[str | None, bytes]] = []
        self.exported = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _AgentOpsStandIn

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/v3/auth/token":
            request = json.loads(body)
            self.server.auth_requests.append(request)
            ok = request.get("api_key") == "good-key"
            payload = json.dumps({"token": "jwt-1", "project_id": "p-1", "project_prem_status": "pro"})
            self._reply(200 if ok else 401, payload.encode() if ok else b"{}", "application/json")
        elif self.path == "/v1/traces":
            self.server.exports.append((self.headers.get("Authorization"), body))
            self._reply(200, b"", "application/x-protobuf")
            self.server.exported.set()
        else:
            self._reply(404, b"", "text/plain")

    def _reply(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def agentops_server() -> Iterator[_AgentOpsStandIn]:
    server = _AgentOpsStandIn()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5.0)


@agentops.operation
def answer() -> str:
    return "42"


def test_spans_are_exported_only_when_asked(network_guard: Any, agentops_server: _AgentOpsStandIn) -> None:
    tracer = AgentOpsTracer(
        export_to_agentops=True,
        api_key="good-key",
        api_endpoint=agentops_server.url,
        exporter_endpoint=f"{agentops_server.url}/v1/traces",
    )
    tracer.init()
    with tracer.trace_context("agent"):
        answer()
    tracer.teardown()  # shuts the export down, flushing it
    assert agentops_server.exported.wait(10.0)
    assert agentops_server.auth_requests == [{"api_key": "good-key"}]
    authorization, body = agentops_server.exports[0]
    assert authorization == "Bearer jwt-1"
    assert b"answer.task" in body
    # and in the store as usual
    assert [s.name for s in tracer.get_last_trace()] == ["answer.task", "agent"]
    assert network_guard.refused == []


def test_a_refused_api_key_fails_init_naming_the_endpoint(
    network_guard: Any, agentops_server: _AgentOpsStandIn
) -> None:
    tracer = AgentOpsTracer(export_to_agentops=True, api_key="bad-key", api_endpoint=agentops_server.url)
    with pytest.raises(AgentOpsExportError, match=f"AgentOps at {agentops_server.url} did not accept"):
        tracer.init()
    tracer.teardown()
    assert agentops_server.exports == []


def test_an_api_key_alone_sends_nothing(network_guard: Any, agentops_server: _AgentOpsStandIn) -> None:
    tracer = AgentOpsTracer(api_key="good-key", api_endpoint=agentops_server.url)
    tracer.init()
    with tracer.trace_context("agent"):
        answer()
    tracer.teardown()
    assert agentops_server.auth_requests == [] and agentops_server.exports == []
    assert network_guard.connections == []
