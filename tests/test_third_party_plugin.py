"""A third-party distribution, pip-installed into the test environment, is usable by name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentlightning_core import Span, plugins

ROOT = Path(__file__).resolve().parents[1]
AGL = str(Path(sys.executable).with_name("agl"))
PIP = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]


def uninstall() -> None:
    subprocess.run([*PIP, "uninstall", "-y", "agl-example-plugin"], check=True, capture_output=True)


@pytest.fixture
def installed_example() -> Iterator[None]:
    subprocess.run(
        [*PIP, "install", "--no-deps", "--no-build-isolation", str(ROOT / "examples" / "third_party_plugin")],
        check=True,
        capture_output=True,
    )
    plugins.reset_plugins()
    try:
        yield
    finally:
        uninstall()
        plugins.reset_plugins()


def components(kind: str) -> list[str]:
    out = subprocess.run([AGL, "components", kind], capture_output=True, text=True, check=True).stdout
    return [line.split("\t")[0] for line in out.splitlines()]


def test_install_resolve_uninstall(installed_example: None) -> None:
    assert "example-random-search" in components("algorithms")
    assert "example-span-names" in components("adapters")

    algorithm = plugins.resolve_component(
        "algorithm", {"type": "example-random-search", "candidates": ["A {q}"]}
    )
    algorithm.run()
    assert algorithm.chosen.template == "A {q}"
    adapter = plugins.resolve_component("adapter", "example-span-names")
    spans = [Span("r", "a", seq, "t" * 32, f"{seq:016x}", None, f"s{seq}") for seq in (2, 1)]
    assert adapter(spans) == ["s1", "s2"]

    uninstall()
    plugins.reset_plugins()
    assert "example-random-search" not in components("algorithms")
    assert "example-random-search" not in plugins.component_names("algorithm")


def test_example_plugin_is_under_forty_lines_of_code() -> None:
    source = (ROOT / "examples/third_party_plugin/src/agl_example_plugin/__init__.py").read_text()
    code = [
        line for line in source.splitlines() if line.strip() and not line.strip().startswith(("#", '"""'))
    ]
    assert len(code) < 40
