"""Rewards: ``emit_reward`` records one; the readers find them in a trace."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from agentlightning_core import semconv
from agentlightning_core.emitter.recorder import open_span
from agentlightning_core.spans import Span

__all__ = ["emit_reward", "find_final_reward", "find_reward_spans", "get_reward_value", "reward_attributes"]

_RESERVED = frozenset({"value", "primary_key"})


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, got {value!r} ({type(value).__name__})")
    return float(value)


def reward_attributes(reward: float | Mapping[str, float], primary_key: str | None = None) -> dict[str, Any]:
    """The span attributes of a reward; raises ``ValueError`` for anything but finite numbers."""
    if isinstance(reward, Mapping):
        if not reward:
            raise ValueError("A reward dict needs at least one entry, got {}")
        attrs: dict[str, Any] = {}
        for key, value in reward.items():
            if not isinstance(key, str) or not key or key in _RESERVED:
                raise ValueError(
                    f"Reward keys must be non-empty strings other than 'value'/'primary_key', got {key!r}"
                )
            attrs[semconv.REWARD_PREFIX + key] = _finite(value, f"Reward {key!r}")
        if primary_key is None:
            if len(reward) != 1:
                raise ValueError(
                    f"A reward with several entries ({', '.join(map(repr, reward))}) needs primary_key= "
                    "naming the one algorithms optimize"
                )
            primary_key = next(iter(reward))
        if primary_key not in reward:
            raise ValueError(f"primary_key {primary_key!r} is not in the reward's keys {sorted(reward)}")
        attrs[semconv.REWARD_PRIMARY_KEY] = primary_key
        attrs[semconv.REWARD_VALUE] = attrs[semconv.REWARD_PREFIX + primary_key]
        return attrs
    if primary_key is not None:
        raise ValueError(f"primary_key={primary_key!r} applies only to a dict reward, got {reward!r}")
    return {semconv.REWARD_VALUE: _finite(reward, "Reward")}


def emit_reward(reward: float | Mapping[str, float], *, primary_key: str | None = None) -> None:
    """Record a reward span in the current trace.

    ``reward`` is a finite number, or a dict of finite numbers with ``primary_key`` naming
    the primary one (optional when the dict has one entry). Anything else raises
    ``ValueError`` here, not later in training.
    """
    with open_span(semconv.REWARD_SPAN, reward_attributes(reward, primary_key)):
        pass


def get_reward_value(span: Span) -> float | None:
    """The primary reward of a reward span; None for other spans."""
    value = span.attributes.get(semconv.REWARD_VALUE)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def find_reward_spans(spans: Iterable[Span]) -> list[Span]:
    """Reward spans in sequence order."""
    return sorted((s for s in spans if get_reward_value(s) is not None), key=lambda s: s.sequence_id)


def find_final_reward(spans: Iterable[Span]) -> float | None:
    """The last reward of a trace (highest sequence id); None when there is none."""
    rewards = find_reward_spans(spans)
    return get_reward_value(rewards[-1]) if rewards else None
