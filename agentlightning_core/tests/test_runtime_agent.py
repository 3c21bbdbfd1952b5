"""LitAgent dispatch and the @rollout / @llm_rollout / @prompt_rollout decorators."""

from __future__ import annotations

from typing import Any

import pytest

from agentlightning_core import (
    LLM,
    AttemptedRollout,
    LitAgent,
    PromptTemplate,
    ProxyLLM,
    llm_rollout,
    prompt_rollout,
    rollout,
)
from agentlightning_core.litagent.base import missing_resources
from agentlightning_core.types import Attempt, Rollout


def _attempted(mode: Any = None) -> AttemptedRollout:
    return AttemptedRollout(
        rollout=Rollout(rollout_id="ro-1", input="t", start_time=0.0, mode=mode),
        attempt=Attempt(rollout_id="ro-1", attempt_id="at-1", sequence_id=1, start_time=0.0),
    )


RESOURCES: dict[str, Any] = {
    "main": LLM(endpoint="http://127.0.0.1:1/v1", model="m"),
    "tpl": PromptTemplate("Q: {q}"),
    "judge": PromptTemplate("J"),
}


def test_rollout_injects_only_declared_parameters() -> None:
    seen: dict[str, Any] = {}

    @rollout
    def agent(task, llm, prompt_template, rollout, judge):  # type: ignore[no-untyped-def]
        seen.update(task=task, llm=llm, prompt_template=prompt_template, rollout=rollout, judge=judge)
        return 0.5

    method, is_async = agent.implementation("train")
    assert not is_async
    ar = _attempted("train")
    assert method("t", RESOURCES, ar) == 0.5
    assert seen["task"] == "t"
    assert seen["llm"] is RESOURCES["main"]  # first LLM: none is named "llm"
    assert seen["prompt_template"] is RESOURCES["tpl"]
    assert seen["rollout"] is ar
    assert seen["judge"] is RESOURCES["judge"]
    assert agent.required_resources == ("llm", "prompt_template", "judge")
    assert agent("direct", None, None, None, None) == 0.5  # still callable as the function


@pytest.mark.anyio
async def test_async_function_becomes_async_agent() -> None:
    @prompt_rollout
    async def agent(task, prompt_template):  # type: ignore[no-untyped-def]
        return prompt_template.format(q=task)

    method, is_async = agent.implementation(None)
    assert is_async
    assert await method("2+2", RESOURCES, _attempted()) == "Q: 2+2"


def test_proxy_llm_is_routed_to_the_attempt() -> None:
    @llm_rollout
    def agent(task, llm):  # type: ignore[no-untyped-def]
        return llm

    proxy = ProxyLLM(endpoint="http://127.0.0.1:9/v1", model="m")
    llm = agent.rollout("t", {"llm": proxy}, _attempted())
    assert type(llm) is LLM
    assert llm.endpoint == "http://127.0.0.1:9/rollout/ro-1/attempt/at-1/v1"


def test_optional_named_resource_uses_default() -> None:
    @rollout
    def agent(task, missing=None):  # type: ignore[no-untyped-def]
        return missing

    assert agent.rollout("t", {}, _attempted()) is None
    assert agent.required_resources == ()


def test_missing_resource_at_call_names_it() -> None:
    @rollout
    def agent(task, critic):  # type: ignore[no-untyped-def]
        return 1.0

    with pytest.raises(LookupError, match=r"'critic'.*initial_resources"):
        agent.rollout("t", RESOURCES, _attempted())
    assert missing_resources(agent, RESOURCES) == ["critic"]


@pytest.mark.parametrize(
    ("decorator", "func", "message"),
    [
        (rollout, lambda: None, "takes no parameters"),
        (rollout, lambda task, *args: None, r"\*args/\*\*kwargs"),
        (rollout, lambda task, **kw: None, r"\*args/\*\*kwargs"),
        (llm_rollout, lambda task, prompt_template: None, "needs a parameter named 'llm'"),
        (prompt_rollout, lambda task: None, "needs a parameter named 'prompt_template'"),
    ],
)
def test_wrong_signature_fails_at_decoration_with_accepted_forms(
    decorator: Any, func: Any, message: str
) -> None:
    with pytest.raises(TypeError, match=message) as info:
        decorator(func)
    assert "Accepted forms" in str(info.value)
    assert "def agent(task, llm)" in str(info.value)


def test_keyword_only_first_parameter_is_rejected() -> None:
    def agent(*, task):  # type: ignore[no-untyped-def]
        return None

    with pytest.raises(TypeError, match="first parameter must be a positional one"):
        rollout(agent)


class ModeAgent(LitAgent[str]):
    def rollout(self, task: str, resources: Any, rollout: AttemptedRollout) -> Any:
        return "plain"

    async def validation_rollout_async(self, task: str, resources: Any, rollout: AttemptedRollout) -> Any:
        return "val-async"


@pytest.mark.anyio
async def test_mode_specific_method_wins() -> None:
    agent = ModeAgent()
    method, is_async = agent.implementation("val")
    assert is_async and await method("t", {}, _attempted("val")) == "val-async"
    method, is_async = agent.implementation("train")
    assert not is_async and method("t", {}, _attempted("train")) == "plain"
    assert not agent.is_async()


def test_agent_without_rollout_method_is_rejected() -> None:
    class Empty(LitAgent[Any]):
        pass

    with pytest.raises(TypeError, match="implements no rollout method"):
        Empty().check()


def test_missing_resources_accepts_any_resource_of_kind() -> None:
    @llm_rollout
    def agent(task, llm):  # type: ignore[no-untyped-def]
        return 1.0

    assert missing_resources(agent, RESOURCES) == []
    assert missing_resources(agent, {"tpl": PromptTemplate("x")}) == ["llm"]
