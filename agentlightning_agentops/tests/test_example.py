"""The example trains by name with the agentops tracer, making no connection beyond 127.0.0.1."""

from __future__ import annotations

import importlib.util
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry import trace as otel_trace

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agentops" / "agentops_agent.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("agentops_agent_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_guard_refuses_a_connection_beyond_the_loopback(network_guard: Any) -> None:
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="network guard"):
        sock.connect(("192.0.2.1", 443))  # TEST-NET-1: never routed
    with pytest.raises(socket.gaierror, match="network guard"):
        socket.getaddrinfo("api.agentops.ai", 443)
    assert network_guard.refused == [("192.0.2.1", 443), ("getaddrinfo", "api.agentops.ai")]
    network_guard.refused.clear()


def test_the_example_trains_offline_by_name(network_guard: Any, capsys: pytest.CaptureFixture[str]) -> None:
    global_provider = otel_trace.get_tracer_provider()
    example = load_example()
    example.main(["--runners", "2", "--epochs", "1"])
    out = capsys.readouterr().out
    # 4 of 5 capitals known by the scripted model; each rollout's LLM call became a triplet
    assert "epoch 1 train: 5/5 succeeded, mean reward 0.800, 5 triplets" in out
    assert network_guard.refused == []
    assert network_guard.connections, "the agent talked to the scripted server over 127.0.0.1"
    assert all(host == "127.0.0.1" for host, *_ in network_guard.connections)
    assert otel_trace.get_tracer_provider() is global_provider
