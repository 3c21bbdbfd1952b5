"""A third-party distribution, pip-installed into the test environment, is usable by name."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from agentlightning_core import PromptTemplate, Span, Trainer, plugins, rollout

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

    assert plugins.resolve_component("algorithm", "example-random-search").n_trials == 3
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


@rollout
def sums(task: dict[str, int], prompt_template: PromptTemplate) -> float:
    """Reward 1.0 when the template's rendering names the sum of the task, else 0.0."""
    return 1.0 if str(task["a"] + task["b"]) in prompt_template.format(**task) else 0.0


def test_random_search_runs_each_candidate_and_publishes_the_best(installed_example: None) -> None:
    candidates = ["{a} and {b}", "sum is {s}", "{a}{b}"]
    trainer = Trainer(
        algorithm={"type": "example-random-search", "candidates": candidates, "n_trials": 3},
        store={"type": "memory", "watchdog_interval": None},
        initial_resources={"prompt_template": PromptTemplate("{a}")},
        n_runners=2,
        progress=False,
    )
    tasks = [{"a": 1, "b": 2, "s": 3}, {"a": 2, "b": 2, "s": 4}, {"a": 5, "b": 1, "s": 9}]
    algorithm = trainer.fit(sums, tasks)
    assert algorithm.scores == {"{a} and {b}": 0.0, "sum is {s}": 2 / 3, "{a}{b}": 0.0}  # type: ignore[attr-defined]
    assert algorithm.best == "sum is {s}"  # type: ignore[attr-defined]

    async def published() -> tuple[str, dict[str | None, int]]:
        latest = await trainer.store.get_latest_resources()
        assert latest is not None
        template = latest.resources["prompt_template"]
        assert isinstance(template, PromptTemplate)
        by_version: dict[str | None, int] = {}
        for row in (await trainer.store.query_rollouts()).items:
            by_version[row.resources_id] = by_version.get(row.resources_id, 0) + 1
        return template.template, by_version

    template, by_version = anyio.run(published)
    assert template == "sum is {s}"
    assert sorted(by_version.values()) == [3, 3, 3]  # every task ran with every candidate
