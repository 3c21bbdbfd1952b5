"""``agl store serve``: a real server process, reached by the HTTP client, stopped by a signal."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import anyio
import pytest

from agentlightning_core.cli import build_parser
from agentlightning_core.remote.client import LightningStoreClient

pytestmark = pytest.mark.anyio


async def _serve(*args: str, env: dict[str, str] | None = None) -> tuple[anyio.abc.Process, str]:
    process = await anyio.open_process(
        [sys.executable, "-m", "agentlightning_core.cli", "store", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    buffer = b""
    with anyio.fail_after(20):
        while b"\n" not in buffer:
            buffer += await process.stdout.receive()
    found = re.search(r"http://127\.0\.0\.1:\d+", buffer.decode())
    assert found, buffer
    return process, found.group(0)


async def _stop(process: anyio.abc.Process, signum: int) -> int:
    process.send_signal(signum)
    with anyio.fail_after(20):
        return await process.wait()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_serve_answers_clients_and_stops_cleanly_on_a_signal(signum: int) -> None:
    process, url = await _serve("--store", "memory", "--token", "tok")
    try:
        async with LightningStoreClient(url, token="tok") as client:
            rollout = await client.enqueue_rollout({"task": 1})
            assert (await client.get_rollout_by_id(rollout.rollout_id)).input == {"task": 1}
        async with LightningStoreClient(url, token="wrong", max_retries=0) as client:
            with pytest.raises(PermissionError):
                await client.statistics()
    finally:
        code = await _stop(process, signum)
    assert code == 0


async def test_serve_reads_the_token_from_the_environment() -> None:
    process, url = await _serve(env={"AGL_SERVER_TOKEN": "env-token"})
    try:
        async with LightningStoreClient(url, token="env-token") as client:
            assert (await client.statistics())["rollouts"] == 0
        async with LightningStoreClient(url, token="", max_retries=0) as client:
            with pytest.raises(PermissionError):
                await client.statistics()
    finally:
        assert await _stop(process, signal.SIGINT) == 0


def test_serve_options() -> None:
    args = build_parser().parse_args(["store", "serve"])
    assert (args.store, args.host, args.port, args.token) == ("memory", "127.0.0.1", 4747, None)
    args = build_parser().parse_args(["store", "serve", "--store", "sqlite", "--path", "x.db", "--port", "0"])
    assert (args.store, args.path, args.port) == ("sqlite", "x.db", 0)
