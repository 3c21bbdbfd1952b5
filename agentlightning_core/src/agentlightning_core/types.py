"""Core data types of the control plane: rollouts, attempts, workers, triplets."""

from __future__ import annotations

import enum
from collections.abc import Iterable
from typing import Any, Literal, TypeVar

import attrs

from agentlightning_core.codec import JsonModel
from agentlightning_core.validation import (
    check_finite,
    check_mode,
    check_non_empty_str,
    check_positive_int,
    check_seconds,
    field,
)

__all__ = [
    "TERMINAL_ATTEMPT_STATUSES",
    "TERMINAL_ROLLOUT_STATUSES",
    "Attempt",
    "AttemptStatus",
    "AttemptedRollout",
    "Rollout",
    "RolloutConfig",
    "RolloutMode",
    "RolloutStatus",
    "Triplet",
    "Worker",
    "WorkerStatus",
    "parse_attempt_status",
    "parse_rollout_status",
    "parse_worker_status",
]

E = TypeVar("E", bound=enum.Enum)


class RolloutStatus(enum.StrEnum):
    """Lifecycle of a rollout (a task run)."""

    QUEUING = "queuing"
    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REQUEUING = "requeuing"


class AttemptStatus(enum.StrEnum):
    """Lifecycle of one attempt (one execution of a rollout by a worker)."""

    PREPARING = "preparing"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    UNRESPONSIVE = "unresponsive"


class WorkerStatus(enum.StrEnum):
    IDLE = "idle"
    BUSY = "busy"
    UNKNOWN = "unknown"


TERMINAL_ROLLOUT_STATUSES = frozenset(
    {RolloutStatus.SUCCEEDED, RolloutStatus.FAILED, RolloutStatus.CANCELLED}
)
TERMINAL_ATTEMPT_STATUSES = frozenset(
    {AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.TIMEOUT, AttemptStatus.UNRESPONSIVE}
)

RolloutMode = Literal["train", "val", "test"]


def to_enum(cls: type[E], value: Any, what: str) -> E:
    """``cls(value)`` with an error that names the value and lists the valid ones."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        raise ValueError(f"Invalid {what} {value!r}; expected one of: {allowed}") from None


# The one way a status value (an enum member or its string) is parsed: by the models'
# converters and by the stores for the statuses callers pass in.


def parse_rollout_status(value: Any) -> RolloutStatus:
    """A :class:`RolloutStatus` from a member or its value; ``ValueError`` listing the valid ones."""
    return to_enum(RolloutStatus, value, "rollout status")


def parse_attempt_status(value: Any) -> AttemptStatus:
    """An :class:`AttemptStatus` from a member or its value; ``cancelled`` gets its own hint."""
    if isinstance(value, AttemptStatus):
        return value
    if value == "cancelled":
        raise ValueError(
            "Invalid attempt status 'cancelled': attempts cannot be cancelled; cancel the rollout "
            "with update_rollout(rollout_id, status='cancelled')"
        )
    return to_enum(AttemptStatus, value, "attempt status")


def parse_worker_status(value: Any) -> WorkerStatus:
    """A :class:`WorkerStatus` from a member or its value."""
    return to_enum(WorkerStatus, value, "worker status")


def _retry_condition(value: Iterable[Any]) -> list[AttemptStatus]:
    if isinstance(value, str):
        raise TypeError(f"retry_condition must be a list of attempt statuses, got the string {value!r}")
    return [to_enum(AttemptStatus, v, "attempt status in retry_condition") for v in value]


@attrs.define(slots=True)
class RolloutConfig(JsonModel):
    """Retry and time-out policy of a rollout.

    A failed/timed-out/unresponsive latest attempt whose status is in ``retry_condition``
    requeues the rollout while fewer than ``max_attempts`` attempts were made.

    The default retries an attempt whose worker was lost (``unresponsive``: a runner process
    died or stopped beating) up to 3 attempts in all; an agent's own failure (``failed``)
    fails the rollout at once unless ``retry_condition`` lists it.
    """

    timeout_seconds: float | None = attrs.field(default=None, validator=field(check_seconds))
    unresponsive_seconds: float | None = attrs.field(default=None, validator=field(check_seconds))
    max_attempts: int = attrs.field(default=3, validator=field(check_positive_int))
    retry_condition: list[AttemptStatus] = attrs.field(
        factory=lambda: [AttemptStatus.UNRESPONSIVE], converter=_retry_condition
    )


@attrs.define(slots=True)
class Rollout(JsonModel):
    """A task to run: its input, mode, resources and current status."""

    rollout_id: str = attrs.field(validator=field(check_non_empty_str))
    input: Any
    start_time: float
    end_time: float | None = None
    mode: RolloutMode | None = attrs.field(default=None, validator=field(check_mode))
    resources_id: str | None = None
    status: RolloutStatus = attrs.field(default=RolloutStatus.QUEUING, converter=parse_rollout_status)
    config: RolloutConfig = attrs.field(factory=RolloutConfig)
    metadata: dict[str, Any] = attrs.field(factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_ROLLOUT_STATUSES


@attrs.define(slots=True)
class Attempt(JsonModel):
    """One execution of a rollout by a worker."""

    rollout_id: str = attrs.field(validator=field(check_non_empty_str))
    attempt_id: str = attrs.field(validator=field(check_non_empty_str))
    sequence_id: int = attrs.field(validator=field(check_positive_int))
    start_time: float
    end_time: float | None = None
    status: AttemptStatus = attrs.field(default=AttemptStatus.PREPARING, converter=parse_attempt_status)
    worker_id: str | None = None
    last_heartbeat_time: float | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)
    resources_id: str | None = None
    """The resources snapshot the attempt runs with (its rollout's when the attempt started)."""
    reward: float | None = None
    """The final reward of the attempt's trace, recorded by the runner when it ends the attempt."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_ATTEMPT_STATUSES


@attrs.define(slots=True)
class AttemptedRollout(JsonModel):
    """A rollout together with the attempt a worker is about to run (what dequeue returns).

    Reads like its rollout (every :class:`Rollout` field, e.g. ``.status``, ``.config``) plus
    ``.attempt`` and ``.attempt_id``, as the earlier API's ``Rollout`` subclass did.
    """

    rollout: Rollout
    attempt: Attempt

    @property
    def rollout_id(self) -> str:
        return self.rollout.rollout_id

    @property
    def attempt_id(self) -> str:
        return self.attempt.attempt_id

    @property
    def input(self) -> Any:
        return self.rollout.input

    @property
    def start_time(self) -> float:
        return self.rollout.start_time

    @property
    def end_time(self) -> float | None:
        return self.rollout.end_time

    @property
    def mode(self) -> RolloutMode | None:
        return self.rollout.mode

    @property
    def resources_id(self) -> str | None:
        return self.rollout.resources_id

    @property
    def status(self) -> RolloutStatus:
        return self.rollout.status

    @property
    def config(self) -> RolloutConfig:
        return self.rollout.config

    @property
    def metadata(self) -> dict[str, Any]:
        return self.rollout.metadata

    @property
    def is_terminal(self) -> bool:
        return self.rollout.is_terminal


@attrs.define(slots=True)
class Worker(JsonModel):
    """A runner process as seen by the store (liveness and what it is doing)."""

    worker_id: str = attrs.field(validator=field(check_non_empty_str))
    status: WorkerStatus = attrs.field(default=WorkerStatus.UNKNOWN, converter=parse_worker_status)
    heartbeat_stats: dict[str, Any] | None = None
    last_heartbeat_time: float | None = None
    last_dequeue_time: float | None = None
    last_busy_time: float | None = None
    last_idle_time: float | None = None
    current_rollout_id: str | None = None
    current_attempt_id: str | None = None


@attrs.define(slots=True)
class Triplet(JsonModel):
    """One learning sample: what the model saw, what it answered and the reward it earned."""

    prompt: Any
    response: Any
    reward: float | None = attrs.field(default=None, validator=field(check_finite, allow_none=True))
    metadata: dict[str, Any] = attrs.field(factory=dict)
