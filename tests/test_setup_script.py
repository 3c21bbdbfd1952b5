"""scripts/setup.sh installs once, says what it installs, and skips when nothing it installs from changed.

Run on a copy of the script in a scratch repository whose ``.venv`` python records the pip
commands it is asked to run (the script is what is under test, not pip).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RECORDING_PYTHON = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/../pip-calls.log"
"""


def scratch_repo(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts" / "setup.sh")
    for path in (
        "pyproject.toml",
        "agentlightning_core/pyproject.toml",
        "plugins/agentlightning_x/pyproject.toml",
    ):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(f'[project]\nname = "{Path(path).parent.name or "root"}"\n')
    (tmp_path / "requirements-dev.txt").write_text("pytest\n")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(RECORDING_PYTHON)
    (bin_dir / "python").chmod(stat.S_IRWXU)
    (bin_dir / "activate").write_text(f'PATH="{bin_dir}:$PATH"\n')
    return tmp_path


def setup(repo: Path) -> tuple[str, list[str]]:
    log = repo / ".venv" / "pip-calls.log"
    log.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "AGL_FORCE_SETUP"}
    done = subprocess.run(
        ["bash", str(repo / "scripts" / "setup.sh")], capture_output=True, text=True, check=True, env=env
    )
    return done.stdout, log.read_text().splitlines() if log.exists() else []


def test_installs_once_then_skips_until_a_pyproject_changes(tmp_path: Path) -> None:
    repo = scratch_repo(tmp_path)
    out, calls = setup(repo)
    assert "installing into .venv" in out and "plugins/agentlightning_x" in out
    assert any("-e plugins/agentlightning_x" in c and "-r requirements-dev.txt" in c for c in calls)

    out, calls = setup(repo)
    assert calls == [] and "up to date" in out

    (repo / "plugins/agentlightning_x/pyproject.toml").write_text('[project]\nname = "x"\nversion = "2"\n')
    out, calls = setup(repo)
    assert calls and "installing into .venv" in out
