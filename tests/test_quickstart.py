"""The quickstart example runs as written, including with a policy that fails every rollout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart" / "quickstart.py"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{a} {op} {b}", "epoch 1 train: 8/8 succeeded, mean reward 1.000"),
        ("{a}", "epoch 1 train: 0/8 succeeded, mean reward n/a"),  # the calculator rejects "{a}"
    ],
)
def test_quickstart(template: str, expected: str) -> None:
    args = ["--epochs", "1", "--runners", "2", "--tasks", "8", "--template", template]
    done = subprocess.run(
        [sys.executable, str(QUICKSTART), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout
