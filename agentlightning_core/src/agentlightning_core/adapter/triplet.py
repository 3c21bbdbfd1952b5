"""Adapters from a trace to prompt/response/reward triplets."""

from __future__ import annotations

import re
from abc import abstractmethod
from collections.abc import Sequence
from typing import Literal

from agentlightning_core.adapter.base import BadDataPolicy, TraceAdapter
from agentlightning_core.adapter.llm_calls import (
    DEFAULT_LLM_CALL_PATTERN,
    LlmCall,
    find_llm_calls,
    usable_llm_calls,
)
from agentlightning_core.emitter.reward import find_reward_spans, get_reward_value
from agentlightning_core.spans import Span
from agentlightning_core.types import Triplet

__all__ = ["LlmProxyTraceToTriplet", "RewardPolicy", "TracerTraceToTriplet"]

RewardPolicy = Literal["last", "broadcast", "preceding"]
_REWARD_POLICIES = ("last", "broadcast", "preceding")


def _position(span: Span, by_time: bool) -> tuple[float, int]:
    if by_time and span.end_time is not None:
        return (span.end_time, span.sequence_id)
    return (float(span.sequence_id), span.sequence_id)


class _TripletAdapter(TraceAdapter[list[Triplet]]):
    _order_by_time = True

    def __init__(
        self,
        *,
        llm_call_match: str = DEFAULT_LLM_CALL_PATTERN,
        reward_policy: RewardPolicy = "last",
        require_reward: bool = True,
        on_bad_data: BadDataPolicy = "raise",
    ) -> None:
        super().__init__(on_bad_data=on_bad_data)
        if reward_policy not in _REWARD_POLICIES:
            raise ValueError(
                f"reward_policy must be one of {', '.join(_REWARD_POLICIES)}, got {reward_policy!r}"
            )
        self.llm_call_match = re.compile(llm_call_match)
        self.reward_policy: RewardPolicy = reward_policy
        self.require_reward = require_reward

    @abstractmethod
    def _calls(self, spans: Sequence[Span]) -> list[LlmCall]:
        """The LLM calls of a trace, in the order the rewards are assigned."""

    def adapt(self, source: Sequence[Span]) -> list[Triplet]:
        self.stats.traces += 1
        where = (
            f"rollout {source[0].rollout_id!r} attempt {source[0].attempt_id!r}"
            if source
            else "an empty trace"
        )
        calls = self._calls(source)
        if not calls:
            self.bad_data("no_llm_call", f"No LLM call matching {self.llm_call_match.pattern!r} in {where}")
            return []
        rewards = find_reward_spans(source)
        if not rewards and self.require_reward:
            self.bad_data("no_reward", f"No reward in {where} ({len(calls)} LLM call(s))")
            return []
        usable = usable_llm_calls(self, calls, where)
        assigned = self._assign_rewards(usable, rewards)
        triplets = [
            Triplet(
                prompt={"messages": c.prompt_messages, "tools": c.tools, "token_ids": c.prompt_token_ids},
                response={"message": c.response_message, "token_ids": c.response_token_ids},
                reward=r,
                metadata=c.metadata(),
            )
            for c, r in zip(usable, assigned, strict=True)
        ]
        self.stats.outputs += len(triplets)
        return triplets

    def _assign_rewards(self, calls: list[LlmCall], rewards: list[Span]) -> list[float | None]:
        out: list[float | None] = [None] * len(calls)
        if not calls or not rewards:
            return out
        final = get_reward_value(rewards[-1])
        if self.reward_policy == "last":
            out[-1] = final
        elif self.reward_policy == "broadcast":
            out = [final] * len(calls)
        else:  # preceding: each reward goes to the latest call that ended before it
            ends = [_position(c.span, self._order_by_time) for c in calls]
            for reward in rewards:
                at = _position(reward, self._order_by_time)
                if reward.start_time is not None and self._order_by_time:
                    at = (reward.start_time, reward.sequence_id)
                index = max((i for i, end in enumerate(ends) if end <= at), default=None)
                if index is not None:
                    out[index] = get_reward_value(reward)
        return out


class TracerTraceToTriplet(_TripletAdapter):
    """Triplets from a tracer's spans: one per LLM call, in start order.

    :param llm_call_match: regex on span names that marks LLM calls.
    :param agent_match: regex on the agent name (``gen_ai.agent.name`` or alike on the span
        or an ancestor); only calls of matching agents count. None keeps all.
    :param repair_hierarchy: rebuild the tree with time-based repairs (see ``TraceTree``).
    :param reward_policy: ``last`` gives the final reward to the last call; ``broadcast``
        to every call; ``preceding`` gives each reward to the latest call that ended before it.
    :param require_reward: a trace without reward is bad data (else rewards are None).
    :param on_bad_data: ``raise`` or ``drop`` (counted in ``stats.drop_counts``).
    """

    def __init__(
        self,
        *,
        llm_call_match: str = DEFAULT_LLM_CALL_PATTERN,
        agent_match: str | None = None,
        repair_hierarchy: bool = True,
        reward_policy: RewardPolicy = "last",
        require_reward: bool = True,
        on_bad_data: BadDataPolicy = "raise",
    ) -> None:
        super().__init__(
            llm_call_match=llm_call_match,
            reward_policy=reward_policy,
            require_reward=require_reward,
            on_bad_data=on_bad_data,
        )
        self.agent_match = re.compile(agent_match) if agent_match is not None else None
        self.repair_hierarchy = repair_hierarchy

    def _calls(self, spans: Sequence[Span]) -> list[LlmCall]:
        return find_llm_calls(
            spans,
            llm_call_match=self.llm_call_match,
            agent_match=self.agent_match,
            repair_hierarchy=self.repair_hierarchy,
        )


class LlmProxyTraceToTriplet(_TripletAdapter):
    """Triplets from spans recorded by an LLM proxy: no tree, calls and rewards ordered by
    sequence id (the order the store received them)."""

    _order_by_time = False

    def _calls(self, spans: Sequence[Span]) -> list[LlmCall]:
        matching = [s for s in spans if self.llm_call_match.search(s.name)]
        matching.sort(key=lambda s: s.sequence_id)
        return [LlmCall.from_span(s) for s in matching]
