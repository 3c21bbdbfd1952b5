"""The earlier API's argument forms keep working, each with one DeprecationWarning naming the new form."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest

from agentlightning_core import ClientServerExecutionStrategy, InMemoryLightningStore, Trainer, rollout
from agentlightning_core._deprecation import reset_deprecation_warnings
from agentlightning_core.adapter.triplet import TracerTraceToTriplet
from agentlightning_core.plugins import resolve_component


@pytest.fixture(autouse=True)
def fresh_warnings() -> Iterator[None]:
    reset_deprecation_warnings()
    yield
    reset_deprecation_warnings()


def deprecations(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)]


def test_n_workers_is_n_runners_and_warns_once() -> None:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        first = Trainer(n_workers=3, progress=False)
        second = Trainer(n_workers=2, progress=False)
    assert (first.n_runners, second.n_runners) == (3, 2)
    (message,) = deprecations(record)
    assert "Trainer(n_runners=3)" in message
    assert record[0].filename == __file__  # points at the caller's line


def test_n_workers_contradicting_n_runners_is_an_error() -> None:
    with pytest.raises(ValueError, match="n_runners=2 contradicts n_workers=3"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Trainer(n_workers=3, n_runners=2)


def test_n_runners_in_the_strategy_dict() -> None:
    with pytest.warns(DeprecationWarning, match=r"Trainer\(n_runners=4, strategy=\{'type': 'cs'\}\)"):
        trainer = Trainer(strategy={"type": "cs", "n_runners": 4}, progress=False)
    assert trainer.n_runners == 4
    assert isinstance(trainer.strategy, ClientServerExecutionStrategy)


def test_adapter_dict_without_type_is_the_default_adapter() -> None:
    with pytest.warns(DeprecationWarning, match="'type': 'tracer_triplet'"):
        trainer = Trainer(adapter={"on_bad_data": "drop"}, progress=False)
    assert isinstance(trainer.adapter, TracerTraceToTriplet) and trainer.adapter.on_bad_data == "drop"


def test_a_store_dict_without_type_is_still_an_error() -> None:
    with pytest.raises(
        TypeError, match=r"A store given as a dict needs a 'type' key naming it, e\.g\. \{'type'"
    ):
        Trainer(store={"path": "x.db"})


def test_an_adapter_error_shows_an_adapter_example() -> None:
    with pytest.raises(
        TypeError, match=r"An algorithm given as a dict needs a 'type' key.*'type': '(apo|baseline|fast)'"
    ):
        Trainer(algorithm={"n_epochs": 2})


def test_dotted_class_path() -> None:
    with pytest.warns(DeprecationWarning, match="'agentlightning_core.store.memory:InMemoryLightningStore'"):
        store = resolve_component("store", "agentlightning_core.store.memory.InMemoryLightningStore")
    assert isinstance(store, InMemoryLightningStore)


def test_unimportable_dotted_path_is_still_unknown() -> None:
    with pytest.raises(LookupError, match=r"Unknown store .no\.such\.Store."):
        resolve_component("store", "no.such.Store")


def test_store_as_a_json_string() -> None:
    with pytest.warns(DeprecationWarning, match=r"store=\{'type': 'memory', 'watchdog_interval': None\}"):
        trainer = Trainer(store='{"type": "memory", "watchdog_interval": null}', progress=False)
    assert isinstance(trainer.store, InMemoryLightningStore)
    with pytest.raises(ValueError, match="not valid JSON"):
        Trainer(store='{"type": memory}')


@rollout
def right_or_wrong(task: Any) -> bool:
    return bool(task)


def test_an_agent_returning_bool_gets_reward_one_or_zero() -> None:
    trainer = Trainer(store={"type": "memory", "watchdog_interval": None}, progress=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        algorithm = trainer.dev(right_or_wrong, [1, 0, 1])
    assert [s.reward for s in algorithm.results] == [1.0, 0.0, 1.0]  # type: ignore[attr-defined]
    (message,) = deprecations(record)
    assert "return 1.0 if ... else 0.0" in message


def test_bad_algorithm_argument_lists_the_accepted_ones() -> None:
    with pytest.raises(TypeError, match="Accepted arguments: timeout"):
        Trainer(algorithm={"type": "fast", "time_out": 3})
