"""What an APO run leaves behind: candidates, their scores, the JSON history and the plot."""

from __future__ import annotations

import json
import logging
import os
import statistics
from pathlib import Path
from typing import Any

import attrs

__all__ = ["Candidate", "RunStats", "write_history", "write_plot"]

logger = logging.getLogger(__name__)


@attrs.define
class Candidate:
    """One prompt the search produced and everything measured about it.

    ``scores`` maps a validation example's index to its mean reward over ``samples_per_task``
    samples; ``variances`` holds the sample variance per example (0 with one sample).
    """

    id: str
    prompt: str
    round: int
    parent: str | None = None
    critique: str | None = None
    status: str = "proposed"
    """proposed, rejected_placeholders, rejected_gate, evaluated."""
    gate_parent_score: float | None = None
    gate_score: float | None = None
    scores: dict[int, float] = attrs.field(factory=dict)
    variances: dict[int, float] = attrs.field(factory=dict)
    tokens: int = 0
    """Optimizer tokens spent proposing this candidate (critique and edit calls)."""
    rollouts: int = 0
    """Rollouts spent on this candidate (minibatch gate and validation)."""

    def mean_on(self, indices: list[int]) -> float | None:
        """Mean score over ``indices`` (None unless every one is scored)."""
        if not indices or any(i not in self.scores for i in indices):
            return None
        return statistics.fmean(self.scores[i] for i in indices)

    @property
    def val_score(self) -> float | None:
        """Mean over every scored validation example."""
        return statistics.fmean(self.scores.values()) if self.scores else None

    def to_json(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["scores"] = {str(k): v for k, v in sorted(self.scores.items())}
        data["variances"] = {str(k): v for k, v in sorted(self.variances.items())}
        data["val_score"] = self.val_score
        return data


@attrs.define
class RunStats:
    """Counters of a run; ``rollouts`` and ``llm_tokens`` are what the budgets limit."""

    rollouts: int = 0
    reused_rollouts: int = 0
    llm_calls: int = 0
    llm_tokens: int = 0
    proposals: int = 0
    rejected_placeholders: int = 0
    rejected_gate: int = 0
    duplicates: int = 0
    empty_critiques: int = 0
    perfect_minibatches: int = 0
    rate_limit_retries: int = 0
    stopped_by: str | None = None


def write_history(
    path: Path,
    candidates: list[Candidate],
    stats: RunStats,
    best: Candidate | None,
    rounds: list[dict[str, Any]],
) -> None:
    """Write the JSON history atomically (a killed run never leaves half a file)."""
    payload = {
        "best": None if best is None else {"id": best.id, "prompt": best.prompt, "val_score": best.val_score},
        "stats": attrs.asdict(stats),
        "rounds": rounds,
        "candidates": [c.to_json() for c in candidates],
    }
    _atomic_write(path, json.dumps(payload, indent=2))


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_plot(path: Path, rounds: list[dict[str, Any]]) -> bool:
    """Plot validation score per round (beam members and the best); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        logger.info("APO plot skipped: install matplotlib (pip install 'agentlightning-apo[plot]')")
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for entry in rounds:
        beam = [s for s in entry["beam_scores"] if s is not None]
        ax.scatter([entry["round"]] * len(beam), beam, color="tab:blue", alpha=0.5, s=20)
    ax.plot(
        [e["round"] for e in rounds],
        [e["best_score"] for e in rounds],
        color="tab:red",
        marker="o",
        label="best",
    )
    ax.scatter([], [], color="tab:blue", alpha=0.5, s=20, label="beam")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("round")
    ax.set_ylabel("validation score")
    ax.set_ylim(-0.05, 1.05)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
