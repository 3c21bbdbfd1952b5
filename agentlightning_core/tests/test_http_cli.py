"""``agl store serve``: a real server process, reached by the HTTP client, stopped by a signal;
and the store options every store command shares."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from agentlightning_core.cli import build_parser, main
from agentlightning_core.cli.store import store_spec_from_args
from agentlightning_core.plugins import resolve_component
from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_core.testing.store import make_span

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
    assert args.workers == 1
    args = build_parser().parse_args(["store", "serve", "--store", "sqlite", "--path", "x.db", "--port", "0"])
    assert (args.store, args.path, args.port) == ("sqlite", "x.db", 0)


# --- store specs, shared by every command that takes a store --------------------------------


@pytest.mark.parametrize(
    ("argv", "spec"),
    [
        (["store", "serve"], "memory"),
        (["store", "serve", "--store", "sqlite", "--path", "x.db"], {"type": "sqlite", "path": "x.db"}),
        (
            ["store", "serve", "--store", '{"type": "sqlite", "path": "x.db"}'],
            {"type": "sqlite", "path": "x.db"},
        ),
        (["store", "serve", "--store", '{"type": "memory"}', "--path", "m"], {"type": "memory", "path": "m"}),
        (["store", "serve", "--store", "pkg.mod:Store"], "pkg.mod:Store"),
        (
            ["traces", "show", "ro-1", "--store", "sqlite", "--path", "x.db"],
            {"type": "sqlite", "path": "x.db"},
        ),
        (
            ["traces", "show", "ro-1", "--store", ' {"type": "sqlite", "path": "x.db"}'],
            {"type": "sqlite", "path": "x.db"},
        ),
    ],
)
def test_store_commands_take_the_same_store_specs(argv: list[str], spec: object) -> None:
    assert store_spec_from_args(build_parser().parse_args(argv)) == spec


def test_bad_store_specs_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    both = ["--store", '{"type": "sqlite", "path": "a.db"}', "--path", "b.db"]
    assert main(["traces", "show", "ro-1", *both]) == 1
    assert "--path 'b.db' contradicts the path 'a.db' in --store" in capsys.readouterr().err
    assert main(["store", "serve", "--store", "{sqlite}"]) == 1
    assert "starts with '{' but is not valid JSON" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        build_parser().parse_args(["traces", "show", "ro-1"])  # --store is required there


async def test_traces_show_reads_a_file_store_named_either_way(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(tmp_path / "runs.db")
    async with resolve_component("store", {"type": "sqlite", "path": path}) as store:
        attempted = await store.start_rollout("task")
        await store.add_span(make_span(attempted.rollout_id, attempted.attempt_id, 1, name="agent-step"))
    rid = attempted.rollout_id
    outputs = []
    for store_args in (
        ["--store", "sqlite", "--path", path],
        ["--store", json.dumps({"type": "sqlite", "path": path})],
    ):
        code = await anyio.to_thread.run_sync(main, ["traces", "show", rid, *store_args])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        outputs.append(captured.out)
    assert outputs[0] == outputs[1] and "agent-step" in outputs[0]


def test_serve_workers_need_a_store_shared_by_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["store", "serve", "--port", "0", "--workers", "2"]) == 1
    assert "--workers 2 needs a store that keeps its data outside the process" in capsys.readouterr().err
    assert main(["store", "serve", "--port", "0", "--workers", "0"]) == 1
    assert "--workers must be a number of processes >= 1, got 0" in capsys.readouterr().err
