"""Emitters: record rewards, messages, objects, exceptions, annotations and operations as spans
of the current trace, plus readers that find rewards in a trace."""

from agentlightning_core.emitter.events import emit_annotation, emit_exception, emit_message, emit_object
from agentlightning_core.emitter.operation import operation
from agentlightning_core.emitter.reward import (
    emit_reward,
    find_final_reward,
    find_reward_spans,
    get_reward_value,
)

__all__ = [
    "emit_annotation",
    "emit_exception",
    "emit_message",
    "emit_object",
    "emit_reward",
    "find_final_reward",
    "find_reward_spans",
    "get_reward_value",
    "operation",
]
