"""``cs`` from a script without the ``if __name__ == "__main__":`` guard fails at once, in the
parent, with one message naming the fix (not a traceback per spawned runner process)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

UNGUARDED = textwrap.dedent(
    """
    from agentlightning_core import Trainer, rollout

    @rollout
    def one(task):
        return 1.0

    Trainer(strategy="cs", progress=False).dev(one, [1, 2])
    """
)

GUARDED_IN_MAIN = textwrap.dedent(
    """
    from agentlightning_core import Trainer, rollout

    @rollout
    def one(task):
        return 1.0

    def main():
        algorithm = Trainer(strategy="cs", progress=False).dev(one, [1, 2])
        print([s.reward for s in algorithm.results])

    if __name__ == "__main__":
        main()
    """
)


def run(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "train.py"
    script.write_text(source)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_unguarded_script_fails_with_one_message(tmp_path: Path) -> None:
    done = run(tmp_path, UNGUARDED)
    assert done.returncode == 1
    assert done.stderr.count("RuntimeError: The 'cs' strategy starts runner processes") == 1
    assert 'Put the code that starts training under `if __name__ == "__main__":`' in done.stderr
    assert "line 8 starts training at import time" in done.stderr
    assert "bootstrapping" not in done.stderr and "Runner process" not in done.stderr


@pytest.mark.parametrize("source", [GUARDED_IN_MAIN])
def test_guarded_script_runs(tmp_path: Path, source: str) -> None:
    done = run(tmp_path, source)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[1.0, 1.0]"


def test_a_busy_port_names_the_strategy_argument() -> None:
    import socket

    from agentlightning_core import ClientServerExecutionStrategy, Trainer, rollout

    @rollout
    def one(task):  # type: ignore[no-untyped-def]
        return 1.0

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        strategy = ClientServerExecutionStrategy(role="algorithm", server_port=port)
        trainer = Trainer(
            strategy=strategy, store={"type": "memory", "watchdog_interval": None}, progress=False
        )
        with pytest.raises(OSError) as info:
            trainer.dev(one, [1])
    message = str(info.value)
    assert "strategy={'type': 'cs', 'server_port': 0}" in message and "--port" not in message
