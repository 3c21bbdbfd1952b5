"""``agl store serve --store postgres --workers N``: server processes sharing one port and one
database, stopped by a signal; a bad DSN stops them all with a clear error."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import anyio.abc
import pytest

from agentlightning_core.remote.client import LightningStoreClient
from agentlightning_postgres.schema import DSN_ENV
from agentlightning_postgres.testing import PASSWORD

pytestmark = pytest.mark.anyio


async def _serve(env: dict[str, str], *args: str) -> anyio.abc.Process:
    return await anyio.open_process(
        [sys.executable, "-m", "agentlightning_core.cli", "store", "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )


async def _first_line(process: anyio.abc.Process) -> str:
    assert process.stdout is not None
    buffer = b""
    with anyio.fail_after(120):
        while b"\n" not in buffer:
            buffer += await process.stdout.receive()
    return buffer.decode()


def _children(pid: int) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and "spawn_main" in cmdline:
                found.append(entry.name)
    return found


async def test_worker_processes_share_the_port_and_the_database(dsn: str) -> None:
    process = await _serve(
        {DSN_ENV: dsn}, "--store", '{"type": "postgres", "schema": "served"}', "--workers", "2"
    )
    try:
        line = await _first_line(process)
        assert "from 2 processes" in line, line
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert found, line
        assert len(_children(process.pid)) == 2
        # separate connections land on either process; all see one database
        ids = []
        for i in range(6):
            async with LightningStoreClient(found.group(0)) as client:
                ids.append((await client.enqueue_rollout({"i": i})).rollout_id)
        async with LightningStoreClient(found.group(0)) as client:
            got = [await client.dequeue_rollout() for _ in ids]
            assert [g.rollout_id for g in got if g is not None] == ids
            assert await client.dequeue_rollout() is None
    finally:
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            code = await process.wait()
        await process.aclose()
    assert code == 0
    assert _children(process.pid) == []


async def test_a_bad_dsn_stops_every_worker_and_names_the_dsn_without_its_password(dsn: str) -> None:
    bad = re.sub(r":\d+/", ":1/", dsn)  # nothing listens on port 1
    process = await _serve({DSN_ENV: bad}, "--store", "postgres", "--workers", "2")
    assert process.stderr is not None
    with anyio.fail_after(120):
        code = await process.wait()
        err = b"".join([chunk async for chunk in process.stderr]).decode()
    await process.aclose()
    assert code == 1
    assert "Cannot connect to the PostgreSQL store" in err and "port=1" in err
    assert PASSWORD not in err


async def test_workers_refuse_the_memory_store() -> None:
    process = await _serve({}, "--store", "memory", "--workers", "2")
    assert process.stderr is not None
    with anyio.fail_after(60):
        code = await process.wait()
        err = b"".join([chunk async for chunk in process.stderr]).decode()
    await process.aclose()
    assert code != 0 and "--workers 2 needs a store that keeps its data outside the process" in err
