"""The plot is a PNG when matplotlib is installed, and skipped with a clear False when not."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from agentlightning_apo.history import write_plot

ROUNDS = [
    {"round": 0, "beam_scores": [0.0], "best_score": 0.0},
    {"round": 1, "beam_scores": [0.5, 0.25], "best_score": 0.5},
]


def test_plot(tmp_path: Path) -> None:
    path = tmp_path / "progress.png"
    drawn = write_plot(path, ROUNDS)
    has_matplotlib = importlib.util.find_spec("matplotlib") is not None
    assert drawn is has_matplotlib
    assert path.exists() is has_matplotlib
    if has_matplotlib:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
