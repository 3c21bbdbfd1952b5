"""SIGTERM (``docker stop``, ``timeout``, systemd) ends a run like Ctrl+C: real signals sent to a
real training process with real runner processes, checked on the SQLite file it leaves.

The training process starts with SIGINT at its default (a foreground job of a terminal, which
Ctrl+C reaches) or ignored (a background job of a shell script), whatever the test process
inherited: a test suite run in the background (``pytest ... &``) passes an ignored SIGINT on to
its children, which then never see Ctrl+C."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Literal

import anyio
import pytest

from agentlightning_core.testing.processes import python_command
from agentlightning_sqlite import SqliteLightningStore

SCRIPT = textwrap.dedent(
    """
    import os, sys
    import anyio
    from agentlightning_core import Trainer, rollout

    started = 0

    @rollout
    async def slow(task):
        global started
        started += 1
        sys.stdout.write("running\\n")  # one write: two runner processes share the pipe
        sys.stdout.flush()
        # shm: the second rollout of this process runs Python code until the test has sent its
        # signal (so the signal lands inside a runner, not while the event loop waits).
        while started == 2 and not os.path.exists(sys.argv[3]):
            pass
        await anyio.sleep(60)
        return 1.0

    if __name__ == "__main__":
        trainer = Trainer(algorithm="fast", strategy=sys.argv[2], n_runners=2, progress=False,
                          store={"type": "sqlite", "path": sys.argv[1]})
        trainer.fit(slow, list(range(4)))
        print("finished without interruption", flush=True)
    """
)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def store_state(path: Path) -> tuple[list[str], list[str], dict[str, int]]:
    async def main() -> tuple[list[str], list[str], dict[str, int]]:
        async with SqliteLightningStore(path, watchdog_interval=None) as store:
            attempts = [
                a.status.value
                for r in (await store.query_rollouts()).items
                for a in (await store.query_attempts(r.rollout_id)).items
            ]
            workers = [w.status.value for w in (await store.query_workers()).items]
            return attempts, workers, (await store.statistics())["rollouts_by_status"]

    return anyio.run(main)


@pytest.mark.parametrize(
    ("strategy", "signum", "sigint"),
    [
        pytest.param("cs", signal.SIGTERM, "default", id="cs-SIGTERM"),
        pytest.param("shm", signal.SIGTERM, "default", id="shm-SIGTERM"),
        pytest.param("cs", signal.SIGINT, "default", id="cs-SIGINT"),
        # A background job ignores Ctrl+C; SIGTERM still ends its run cleanly.
        pytest.param("cs", signal.SIGTERM, "ignored", id="cs-SIGTERM-background"),
        pytest.param("shm", signal.SIGTERM, "ignored", id="shm-SIGTERM-background"),
    ],
)
def test_a_signal_stops_the_run_cleanly(
    tmp_path: Path, strategy: str, signum: signal.Signals, sigint: Literal["default", "ignored"]
) -> None:
    script, db, sent_flag = tmp_path / "train.py", tmp_path / "runs.db", tmp_path / "signal-sent"
    script.write_text(SCRIPT)
    proc = subprocess.Popen(
        python_command(str(script), str(db), strategy, str(sent_flag), sigint=sigint),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    runner_pids: list[int] = []
    watchdog = threading.Timer(120, proc.kill)  # a hung child must not hang the test run
    watchdog.start()
    try:
        assert proc.stdout is not None
        for _ in range(2):  # both runners are inside the agent
            line = proc.stdout.readline()
            assert line.strip() == "running", (
                f"child said {line!r}: {proc.stderr.read() if proc.stderr else ''}"
            )
        runner_pids = [
            p for p in children(proc.pid) if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()
        ]
        assert len(runner_pids) == (2 if strategy == "cs" else 0)
        sent = time.monotonic()
        proc.send_signal(signum)
        sent_flag.touch()
        out, err = proc.communicate(timeout=60)
        took = time.monotonic() - sent
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in runner_pids:  # never leave a runner behind, whatever happened
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert proc.returncode in (130, -signal.SIGINT), err  # exits as interrupted
    assert "finished without interruption" not in out
    name = "SIGTERM" if signum == signal.SIGTERM else "Ctrl+C (SIGINT)"
    assert err.splitlines() == [
        f"Interrupted by {name}: runners stopped, in-flight attempts marked failed, workers idle, store closed"
    ]
    print(f"stopped {took:.1f}s after {name}")  # bounded by the strategy's terminate_seconds
    for pid in runner_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    attempts, workers, by_status = store_state(db)
    assert sorted(attempts) == ["failed", "failed"]
    assert workers == ["idle", "idle"]
    assert by_status["running"] == 0 and by_status["preparing"] == 0 and by_status["queuing"] == 2


@pytest.mark.parametrize(
    "inherited", [signal.SIG_IGN, signal.default_int_handler], ids=["background", "foreground"]
)
@pytest.mark.parametrize("sigint", ["default", "ignored"])
def test_python_command_sets_sigint_whatever_the_test_process_inherited(
    inherited: Any, sigint: Literal["default", "ignored"]
) -> None:
    show = "import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)"
    previous = signal.signal(signal.SIGINT, inherited)  # as this process's parent gave it
    try:
        started = subprocess.run(python_command("-c", show, sigint=sigint), capture_output=True, text=True)
        plain = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == str(sigint == "default")
    # Started plainly, the child inherits the state: Ctrl+C reaches it only from the foreground.
    assert plain.stdout.strip() == str(inherited is signal.default_int_handler)
