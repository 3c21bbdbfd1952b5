"""Every distribution of the monorepo builds a wheel on its own, with its typing marker and entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DISTRIBUTIONS = sorted(
    p.parent for p in [*ROOT.glob("agentlightning_*/pyproject.toml"), *ROOT.glob("plugins/*/pyproject.toml")]
)


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda p: p.name)
def test_distribution_builds_a_wheel(dist: Path, tmp_path: Path) -> None:
    assert (dist / "README.md").is_file()
    assert (dist / "tests").is_dir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(dist),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    import_name = dist.name
    assert f"{import_name}/py.typed" in names
    assert f"{import_name}/__init__.py" in names
    entry_points = next((n for n in names if n.endswith("entry_points.txt")), None)
    if dist.name != "agentlightning_core":
        assert entry_points is not None
        text = zipfile.ZipFile(wheel).read(entry_points).decode()
        assert "[agentlightning]" in text
