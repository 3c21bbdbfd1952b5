"""What a user sees of failed rollouts: one WARNING per failure kind, ``agl rollouts list/show``
and ``agl traces show`` on a real SQLite file, and read-only commands that create nothing."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentlightning_core import Trainer, rollout

AGL = str(Path(sys.executable).with_name("agl"))


def agl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGL, *args], capture_output=True, text=True, timeout=60, check=False)


@rollout
def picky(task: Any) -> Any:
    if task == "boom":
        raise ValueError(f"the agent cannot handle {task!r}")
    if task == "text":
        return "not a reward"
    return 0.75


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A finished run on a SQLite file: ``{task: rollout id}`` (of the last rollout of each task)."""
    path = tmp_path_factory.mktemp("cli") / "runs.db"
    trainer = Trainer(algorithm="fast", store={"type": "sqlite", "path": str(path)}, progress=False)
    algorithm = trainer.fit(picky, ["ok", "boom", "boom", "text", "text", "ok"])
    return path, {s.rollout.input: s.rollout.rollout_id for s in algorithm.results}  # type: ignore[attr-defined]


def test_first_failure_of_each_kind_is_one_warning_with_its_rollout(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    trainer = Trainer(store={"type": "memory", "watchdog_interval": None}, progress=False)
    with caplog.at_level(logging.INFO, logger="agentlightning_core.runner.agent"):
        algorithm = trainer.dev(picky, ["boom", "text", "boom", "text", "ok"])
    ids = [s.rollout.rollout_id for s in algorithm.results]  # type: ignore[attr-defined]
    warnings = [
        r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and r.name.endswith("agent")
    ]
    assert len(warnings) == 2, warnings
    assert ids[0] in warnings[0] and "ValueError: the agent cannot handle 'boom'" in warnings[0]
    assert ids[1] in warnings[1] and "AgentResultError: The agent returned str" in warnings[1]
    infos = [
        r.getMessage() for r in caplog.records if r.levelno == logging.INFO and "failed" in r.getMessage()
    ]
    assert any(ids[2] in m for m in infos) and any(ids[3] in m for m in infos)


def test_rollouts_list(run: tuple[Path, dict[str, str]]) -> None:
    path, ids = run
    out = agl("rollouts", "list", "--store", "sqlite", "--path", str(path))
    assert out.returncode == 0, out.stderr
    header, *rows = out.stdout.splitlines()
    assert header.split() == ["ROLLOUT", "STATUS", "ATTEMPTS", "REWARD", "DURATION"]
    by_id = {row.split()[0]: row.split() for row in rows}
    assert set(ids.values()) <= set(by_id) and len(by_id) == 6
    assert by_id[ids["ok"]][1:4] == ["succeeded", "1", "0.75"]
    assert by_id[ids["boom"]][1:4] == ["failed", "1", "-"]
    assert by_id[ids["ok"]][4].endswith("s")
    failed = agl(
        "rollouts", "list", "--store", "sqlite", "--path", str(path), "--status", "failed", "--limit", "2"
    )
    assert failed.returncode == 0, failed.stderr
    assert [r.split()[1] for r in failed.stdout.splitlines()[1:]] == ["failed", "failed"]


def test_rollouts_show_and_traces_show_print_the_error(run: tuple[Path, dict[str, str]]) -> None:
    path, ids = run
    out = agl("rollouts", "show", ids["boom"], "--store", "sqlite", "--path", str(path))
    assert out.returncode == 0, out.stderr
    assert "status    failed" in out.stdout
    assert "worker=runner-0" in out.stdout
    assert "error: ValueError: the agent cannot handle 'boom'" in out.stdout
    ok = agl("rollouts", "show", ids["ok"], "--store", "sqlite", "--path", str(path))
    assert "reward    0.75" in ok.stdout and "error:" not in ok.stdout
    trace = agl("traces", "show", ids["boom"], "--store", "sqlite", "--path", str(path))
    assert trace.returncode == 0, trace.stderr
    assert "message=the agent cannot handle 'boom'" in trace.stdout


@pytest.mark.parametrize(
    "command", [["rollouts", "list"], ["rollouts", "show", "ro-x"], ["traces", "show", "ro-x"]]
)
def test_read_only_commands_never_create_a_store_file(tmp_path: Path, command: list[str]) -> None:
    typo = tmp_path / "rusn.db"
    out = agl(*command, "--store", "sqlite", "--path", str(typo))
    assert out.returncode == 1
    assert f"No store file at '{typo}'" in out.stderr
    assert not typo.exists()


def test_a_memory_store_in_a_fresh_process_is_explained() -> None:
    out = agl("rollouts", "list", "--store", "memory")
    assert out.returncode == 1
    assert "memory store, which lives inside the process that created it" in out.stderr


def test_unknown_rollout_is_a_one_line_error(run: tuple[Path, dict[str, str]]) -> None:
    path, _ = run
    out = agl("rollouts", "show", "ro-nope", "--store", "sqlite", "--path", str(path))
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "ro-nope" in out.stderr
