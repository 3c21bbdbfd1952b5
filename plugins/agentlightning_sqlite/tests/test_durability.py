"""Crash safety and sharing one file between processes, with real child processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import anyio

from agentlightning_core.types import RolloutStatus
from agentlightning_sqlite import SqliteLightningStore

CHILD = str(Path(__file__).with_name("store_child.py"))
DEADLINE = 60.0  # seconds before a hung child is killed (the test then fails)


def _spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, CHILD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    timer = threading.Timer(DEADLINE, proc.kill)
    timer.daemon = True
    timer.start()
    return proc


def test_sigkill_mid_stream_keeps_every_acknowledged_item_and_no_partial_batch(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    proc = _spawn("ingest", str(path))
    assert proc.stdout is not None and proc.stderr is not None
    acks: list[list[str]] = []
    while sum(1 for a in acks if a[0] == "batch") < 40:
        line = proc.stdout.readline()
        assert line, f"child exited early: {proc.stderr.read()}"
        acks.append(line.split())
    proc.send_signal(signal.SIGKILL)
    acks += [line.split() for line in proc.stdout.read().splitlines()]
    assert proc.wait() == -signal.SIGKILL

    async def check() -> None:
        async with SqliteLightningStore(path) as store:
            rollouts = await store.query_rollouts()
            ids = {r.rollout_id for r in rollouts}
            for kind, rollout_id, *_ in acks:
                assert rollout_id in ids, f"acknowledged {kind} of {rollout_id} is missing after the crash"
            acked_batches = {a[1] for a in acks if a[0] == "batch"}
            for rollout in rollouts:
                spans = await store.query_spans(rollout.rollout_id)
                assert len(spans) in (0, 20), f"partial batch: {len(spans)} spans in {rollout.rollout_id}"
                if rollout.rollout_id in acked_batches:
                    assert len(spans) == 20
                    assert [s.sequence_id for s in spans] == list(range(1, 21))
                if rollout.status is not RolloutStatus.QUEUING:
                    assert (await store.get_latest_attempt(rollout.rollout_id)) is not None
            stats = await store.statistics()
            assert stats["spans"] >= 20 * len(acked_batches)

    anyio.run(check)


def test_four_processes_share_one_file_without_lock_errors(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    n_queued, n_each = 200, 40

    async def setup() -> tuple[list[str], str, str]:
        async with SqliteLightningStore(path) as store:
            from agentlightning_core.store.base import EnqueueRequest

            queued = await store.enqueue_many_rollouts([EnqueueRequest(input=i) for i in range(n_queued)])
            shared = await store.start_rollout("shared")
            return [r.rollout_id for r in queued], shared.rollout_id, shared.attempt_id

    queued, shared_rollout, shared_attempt = anyio.run(setup)
    procs = [
        _spawn("worker", str(path), f"w{i}", shared_rollout, shared_attempt, str(n_each)) for i in range(4)
    ]
    outputs = []
    for proc in procs:
        out, err = proc.communicate()
        assert proc.returncode == 0, err
        assert "locked" not in err
        outputs.append([line.split() for line in out.splitlines()])
    assert all(lines[-1] == ["done"] for lines in outputs)

    dequeued = Counter(a[1] for lines in outputs for a in lines if a[0] == "dequeued")
    assert max(dequeued.values()) == 1, "a rollout was dequeued twice"
    assert set(queued) <= set(dequeued)
    allocated = [int(a[1]) for lines in outputs for a in lines if a[0] == "seq"]
    assert len(allocated) == len(set(allocated)) == 4 * n_each

    async def check() -> None:
        async with SqliteLightningStore(path) as store:
            spans = await store.query_spans(shared_rollout)
            seqs = [s.sequence_id for s in spans]
            assert len(seqs) == len(set(seqs)) == 2 * 4 * n_each
            assert set(allocated) <= set(seqs)
            stats = await store.statistics()
            assert stats["rollouts"] == n_queued + 1 + 4 * n_each
            assert stats["attempts"] == len(dequeued) + 1
            workers = await store.query_workers()
            assert {w.worker_id for w in workers} == {f"w{i}" for i in range(4)}

    anyio.run(check)


async def _enqueue(path: Path, n: int) -> list[str]:
    async with SqliteLightningStore(path, watchdog_interval=None) as store:
        rollouts = [await store.enqueue_rollout(i) for i in range(n)]
        resources = await store.add_resources({})
        ar = await store.start_rollout("started")
        return [*(r.rollout_id for r in rollouts), resources.resources_id, ar.rollout_id, ar.attempt_id]


def test_forked_processes_make_distinct_ids_in_one_file(tmp_path: Path) -> None:
    """A process forked after importing the store (a runner, say) must not repeat its parent's ids."""
    path = tmp_path / "fork.db"
    asyncio.run(_enqueue(path, 1))  # create the file before the fork
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the same calls as the parent, then leave at once
        code = 1
        try:
            os.write(write_end, " ".join(asyncio.run(_enqueue(path, 5))).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = pipe.read().decode().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child failed to write its rollouts"
    parent = asyncio.run(_enqueue(path, 5))
    assert len(child) == len(parent) == 8
    assert not set(child) & set(parent), "a forked child repeated its parent's ids"
