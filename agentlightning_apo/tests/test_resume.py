"""A run SIGKILLed mid-round and restarted on the same SQLite store repeats no finished evaluation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from apo_world import GOOD_PROMPT, agent_requests

CHILD = Path(__file__).resolve().parent / "apo_child.py"
PROPOSALS = [
    "<prompt>Answer {question} politely.</prompt>",
    f"<prompt>{GOOD_PROMPT}</prompt>",
    "<prompt>Please answer the question {question} carefully.</prompt>",
]


def run_child(base_url: str, tmp_path: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), base_url, str(tmp_path / "apo.sqlite"), str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("kill_at_call", [1, 3])
def test_resume_after_sigkill_repeats_no_finished_evaluation(
    make_world: Any, tmp_path: Path, kill_at_call: int
) -> None:
    world, server, _ = make_world(PROPOSALS)
    child: dict[str, subprocess.Popen[str]] = {}
    killed = threading.Event()

    def kill_child(n: int) -> None:  # runs in the server thread while the child waits for this reply
        if n == kill_at_call and not killed.is_set():
            os.kill(child["p"].pid, signal.SIGKILL)
            killed.set()

    world.on_optimizer_call = kill_child
    child["p"] = run_child(server.base_url, tmp_path)
    child["p"].communicate(timeout=120)
    assert child["p"].returncode == -signal.SIGKILL and killed.is_set()
    before = agent_requests(server)
    calls_before = world.optimizer_calls
    assert before, "the first run evaluated something before it was killed"

    again = run_child(server.base_url, tmp_path)
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert f"BEST {GOOD_PROMPT}" in out
    after = agent_requests(server)[len(before) :]
    # the kill came while the child waited for the optimizer: every evaluation it had was finished
    assert not set(before) & set(after), "an evaluation finished before the kill ran again"
    reused = int(out.split("REUSED ")[1].split()[0])
    assert reused == len(before)
    # the run as a whole equals an uninterrupted one: each (prompt, task) once
    everything = agent_requests(server)
    assert len(everything) == len(set(everything))
    # 6 proposals in all (1 parent x 2, then 2 x 2): those published before the kill (one per
    # finished call) were not asked for again
    assert 1 <= world.optimizer_calls - calls_before <= 6 - kill_at_call
