"""Rewards: ``emit_reward`` records one; the readers find them in a trace."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agentlightning_core import semconv
from agentlightning_core.emitter._recorder import open_span
from agentlightning_core.spans import Span
from agentlightning_core.validation import check_finite

if TYPE_CHECKING:
    from agentlightning_core.store.base import LightningStore

__all__ = [
    "emit_reward",
    "find_final_reward",
    "find_reward_spans",
    "get_reward_value",
    "query_final_reward",
    "reward_attributes",
]

_RESERVED = frozenset({"value", "primary_key"})
_LEGACY_REWARD_KEYS = ("agentops.task.output", "agentops.entity.output")
"""Where the earlier generation read a reward returned by an AgentOps ``@operation``/``@task``."""


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
            attrs[semconv.REWARD_PREFIX + key] = float(check_finite(f"Reward {key!r}", value))
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
    return {semconv.REWARD_VALUE: float(check_finite("Reward", reward))}


def emit_reward(reward: float | Mapping[str, float], *, primary_key: str | None = None) -> None:
    """Record a reward span in the current trace.

    ``reward`` is a finite number, or a dict of finite numbers with ``primary_key`` naming
    the primary one (optional when the dict has one entry). Anything else raises
    ``ValueError`` here, not later in training.
    """
    with open_span(semconv.REWARD_SPAN, reward_attributes(reward, primary_key)):
        pass


def get_reward_value(span: Span) -> float | None:
    """The primary reward of a reward span; None for other spans.

    A non-finite value (NaN, infinity: never written by :func:`emit_reward`, but a span may
    come from elsewhere) is not a usable reward, so it reads as None too.

    Legacy form: a span whose AgentOps output (``agentops.task.output``) is the JSON of
    ``{"type": "reward", "value": x}``, the earlier generation's convention, is a reward of x.
    """
    attributes = span.attributes
    value = attributes.get(semconv.REWARD_VALUE)
    if value is None:
        value = _legacy_reward(attributes)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _legacy_reward(attributes: Mapping[str, Any]) -> Any:
    for key in _LEGACY_REWARD_KEYS:
        raw = attributes.get(key)
        if isinstance(raw, str) and raw.startswith("{") and '"reward"' in raw:
            try:
                decoded = json.loads(raw)
            except ValueError:
                continue
            if isinstance(decoded, dict) and decoded.get("type") == "reward":
                return decoded.get("value")
    return None


def find_reward_spans(spans: Iterable[Span]) -> list[Span]:
    """Reward spans in sequence order."""
    return sorted((s for s in spans if get_reward_value(s) is not None), key=lambda s: s.sequence_id)


def find_final_reward(spans: Iterable[Span]) -> float | None:
    """The last reward of a trace (highest sequence id); None when there is none."""
    rewards = find_reward_spans(spans)
    return get_reward_value(rewards[-1]) if rewards else None


async def query_final_reward(store: LightningStore, rollout_id: str) -> float | None:
    """The final reward recorded by the latest attempt of a rollout in ``store`` (None if none).

    Raises what ``store.query_spans`` raises (e.g. ``SpansEvictedError``).
    """
    spans = await store.query_spans(rollout_id, "latest", name=semconv.REWARD_SPAN)
    return find_final_reward(spans.items)
