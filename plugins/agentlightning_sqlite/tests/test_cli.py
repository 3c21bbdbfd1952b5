"""``agl sqlite vacuum``: added through the ``register_commands`` hook, reports what it left on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio

from agentlightning_core.testing.store import make_span
from agentlightning_core.types import AttemptStatus
from agentlightning_sqlite import SqliteLightningStore

AGL = str(Path(sys.executable).with_name("agl"))


def _agl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGL, *args], capture_output=True, text=True, env=dict(os.environ), timeout=60)


def _fill(path: Path) -> None:
    async def fill() -> None:
        async with SqliteLightningStore(path) as store:
            done = await store.start_rollout("done")
            await store.add_many_spans(
                [make_span(done.rollout_id, done.attempt_id, i, pad="z" * 300) for i in range(200)]
            )
            await store.update_attempt(done.rollout_id, done.attempt_id, status=AttemptStatus.SUCCEEDED)
            await store.start_rollout("running")

    anyio.run(fill)


def _sizes_on_disk(path: Path) -> dict[str, int]:
    return {str(p): p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.is_file()}


def test_agl_sqlite_vacuum_reports_the_sizes_it_left(tmp_path: Path) -> None:
    path = tmp_path / "cli.db"
    _fill(path)
    before = sum(_sizes_on_disk(path).values())
    out = _agl("sqlite", "vacuum", "--path", str(path), "--older-than", "0")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["deleted_rollouts"] == 1
    assert report["bytes_before"] == before
    left = _sizes_on_disk(path)
    assert report["files_after"] == left  # measured after the store closed, as found now
    assert report["bytes_after"] == sum(left.values()) < before

    out = _agl("sqlite", "vacuum", "--path", str(path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["deleted_rollouts"] == 0


def test_agl_sqlite_vacuum_errors(tmp_path: Path) -> None:
    missing = tmp_path / "typo.db"
    out = _agl("sqlite", "vacuum", "--path", str(missing))
    assert out.returncode == 1 and str(missing) in out.stderr and "does not exist" in out.stderr
    assert not missing.exists()  # a typo never creates a database
    bad = tmp_path / "bad.db"
    bad.write_text("not a database " * 100)
    out = _agl("sqlite", "vacuum", "--path", str(bad))
    assert out.returncode == 1 and str(bad) in out.stderr and "not a usable SQLite database" in out.stderr
    out = _agl("sqlite", "vacuum", "--path", str(bad), "--older-than", "-5")
    assert out.returncode == 1 and "--older-than" in out.stderr


def test_core_store_command_no_longer_vacuums() -> None:
    out = _agl("store", "vacuum", "--path", "x.db")
    assert out.returncode == 2 and "invalid choice: 'vacuum'" in out.stderr
