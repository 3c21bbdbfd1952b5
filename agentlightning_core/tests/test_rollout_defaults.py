"""The default RolloutConfig retries a lost worker's attempt, not an agent failure; install hints work."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from agentlightning_core import InMemoryLightningStore, RolloutConfig
from agentlightning_core.plugins import FIRST_PARTY, FIRST_PARTY_PATHS, install_hint

REPO = Path(__file__).resolve().parents[2]


def test_default_config_retries_unresponsive_up_to_three_attempts() -> None:
    config = RolloutConfig()
    assert config.max_attempts == 3 and config.retry_condition == ["unresponsive"]


@pytest.mark.anyio
async def test_a_lost_worker_is_retried_and_an_agent_failure_is_not() -> None:
    async with InMemoryLightningStore(watchdog_interval=None) as store:
        lost = await store.enqueue_rollout(input="lost")
        for expected in ("requeuing", "requeuing", "failed"):
            attempted = await store.dequeue_rollout(worker_id="w")
            assert attempted is not None and attempted.rollout_id == lost.rollout_id
            await store.update_attempt(lost.rollout_id, attempted.attempt_id, status="unresponsive")
            assert (await store.get_rollout_by_id(lost.rollout_id)).status == expected
        broken = await store.enqueue_rollout(input="broken")
        attempted = await store.dequeue_rollout(worker_id="w")
        assert attempted is not None
        await store.update_attempt(broken.rollout_id, attempted.attempt_id, status="failed")
        assert (await store.get_rollout_by_id(broken.rollout_id)).status == "failed"


def test_every_first_party_distribution_has_a_path() -> None:
    assert {d for names in FIRST_PARTY.values() for d in names.values()} <= set(FIRST_PARTY_PATHS)


@pytest.mark.parametrize(
    "distribution", sorted(d for d, path in FIRST_PARTY_PATHS.items() if (REPO / path).is_dir())
)
def test_install_hints_name_a_path_in_this_repository(distribution: str) -> None:
    hint = install_hint(distribution)
    path = FIRST_PARTY_PATHS[distribution]
    assert f"pip install './{path}'" in hint
    project = tomllib.loads((REPO / path / "pyproject.toml").read_text())["project"]
    assert project["name"] == distribution
