"""The ``agl`` command line, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

AGL = str(Path(sys.executable).with_name("agl"))


def agl(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AGL, *args], capture_output=True, text=True, env={**os.environ, **(env or {})})


def test_version_lists_core() -> None:
    out = agl("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("agl (agentlightning-core) ")


def test_plugins_all_is_sorted_json_with_builtins() -> None:
    out = agl("plugins", "--all")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    names = [entry["distribution"] for entry in report]
    assert names == sorted(names)
    core = next(e for e in report if e["distribution"] == "agentlightning-core")
    assert "memory" in core["components"]["stores"]
    assert core["version"]
    # the installed versions of its dependencies (extras left out)
    assert core["requires"]["pluggy"] == metadata.version("pluggy")
    assert "openai" not in core["requires"]


def test_plugins_without_all_hides_builtins() -> None:
    report = json.loads(agl("plugins").stdout)
    assert all(entry["distribution"] != "agentlightning-core" for entry in report)


def test_components_of_one_kind() -> None:
    out = agl("components", "stores")
    lines = [line.split("\t") for line in out.stdout.splitlines()]
    assert ["memory", "agentlightning-core"] in lines


def test_unknown_kind_is_a_one_line_error() -> None:
    out = agl("components", "databases")
    assert out.returncode == 1
    assert out.stderr.strip() == (
        "agl: error: Unknown component kind 'databases'; expected one of: "
        "algorithms, adapters, tracers, stores, execution_strategies, runners "
        "(or the singular: algorithm, adapter, tracer, store, execution_strategy, runner)"
    )


def test_broken_plugin_is_reported_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "agl_cli_broken.py").write_text("import nonexistent_module_xyz\n")
    info = tmp_path / "agl_cli_broken-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agl-cli-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[agentlightning]\nbroken = agl_cli_broken\n")
    out = agl("plugins", env={"PYTHONPATH": str(tmp_path)})
    assert out.returncode == 1
    assert (
        "Plugin 'broken' (agl_cli_broken) from distribution agl-cli-broken 0.1 failed to import" in out.stderr
    )
    assert "Traceback" not in out.stderr
