"""Span names and attribute keys recorded by Agent Lightning.

LLM calls follow the OpenTelemetry GenAI semantic conventions (``gen_ai.*``); what the
conventions do not cover (rewards, token ids, emitted messages and objects) lives under
``agentlightning.*``. Adapters and emitters read and write only the names defined here.
"""

from __future__ import annotations

__all__ = [
    "AGENT_NAME",
    "AGENT_NAME_KEYS",
    "ANNOTATION_PREFIX",
    "ANNOTATION_SPAN",
    "ATTEMPT_ID",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_SPAN",
    "EXCEPTION_STACKTRACE",
    "EXCEPTION_TYPE",
    "GEN_AI_CONVERSATION_ID",
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OPERATION_NAME",
    "GEN_AI_OUTPUT_MESSAGES",
    "GEN_AI_PROVIDER_NAME",
    "GEN_AI_REQUEST_MAX_TOKENS",
    "GEN_AI_REQUEST_MODEL",
    "GEN_AI_REQUEST_TEMPERATURE",
    "GEN_AI_REQUEST_TOP_P",
    "GEN_AI_RESPONSE_FINISH_REASONS",
    "GEN_AI_RESPONSE_ID",
    "GEN_AI_RESPONSE_MODEL",
    "GEN_AI_TOOL_DEFINITIONS",
    "GEN_AI_USAGE_INPUT_TOKENS",
    "GEN_AI_USAGE_OUTPUT_TOKENS",
    "LLM_PROMPT_TOKEN_IDS",
    "LLM_RESPONSE_TOKEN_IDS",
    "LLM_STREAM",
    "MESSAGE_BODY",
    "MESSAGE_SPAN",
    "OBJECT_JSON",
    "OBJECT_SPAN",
    "OBJECT_TYPE",
    "OPERATION_INPUT",
    "OPERATION_NAME",
    "OPERATION_OUTPUT",
    "REWARD_PREFIX",
    "REWARD_PRIMARY_KEY",
    "REWARD_SPAN",
    "REWARD_VALUE",
    "ROLLOUT_ID",
    "TRACED_HEADER",
    "TRACE_ROOT_SPAN",
]

# --- OpenTelemetry GenAI semantic conventions (inference spans) ----------------------
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_REQUEST_TEMPERATURE = "gen_ai.request.temperature"
GEN_AI_REQUEST_TOP_P = "gen_ai.request.top_p"
GEN_AI_REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
GEN_AI_RESPONSE_ID = "gen_ai.response.id"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
"""JSON list of ``{"role", "parts": [...]}`` messages (the conventions' message schema)."""
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"
"""JSON list of ``{"role", "parts", "finish_reason"}``, one per choice."""
GEN_AI_TOOL_DEFINITIONS = "gen_ai.tool.definitions"
"""JSON list of the tools offered to the model, as sent in the request."""
GEN_AI_CONVERSATION_ID = "gen_ai.conversation.id"
"""The conversation (thread, session) the call belongs to, e.g. a LangGraph ``thread_id``."""
AGENT_NAME = "gen_ai.agent.name"
AGENT_NAME_KEYS: tuple[str, ...] = (AGENT_NAME, "agentlightning.agent.name", "agent.name")
"""Attributes an adapter reads to decide which agent a span belongs to (first found wins)."""

# --- Agent Lightning extensions --------------------------------------------------------
LLM_PROMPT_TOKEN_IDS = "agentlightning.llm.prompt_token_ids"
"""Token ids of the prompt, when the server returns them (e.g. vLLM ``prompt_token_ids``)."""
LLM_RESPONSE_TOKEN_IDS = "agentlightning.llm.response_token_ids"
"""Token ids of the first choice's completion, when the server returns them."""
LLM_STREAM = "agentlightning.llm.stream"

ROLLOUT_ID = "agentlightning.rollout_id"
ATTEMPT_ID = "agentlightning.attempt_id"
TRACE_ROOT_SPAN = "agentlightning.trace"
"""Name of the root span a tracer opens when a trace context has no name."""

REWARD_SPAN = "agentlightning.reward"
REWARD_PREFIX = "agentlightning.reward."
REWARD_VALUE = "agentlightning.reward.value"
"""The primary reward (a finite float)."""
REWARD_PRIMARY_KEY = "agentlightning.reward.primary_key"
"""For a multi-dimensional reward: the key whose value is the primary reward."""

MESSAGE_SPAN = "agentlightning.message"
MESSAGE_BODY = "agentlightning.message.body"

OBJECT_SPAN = "agentlightning.object"
OBJECT_JSON = "agentlightning.object.json"
OBJECT_TYPE = "agentlightning.object.type"

EXCEPTION_SPAN = "agentlightning.exception"
EXCEPTION_TYPE = "exception.type"
EXCEPTION_MESSAGE = "exception.message"
EXCEPTION_STACKTRACE = "exception.stacktrace"

ANNOTATION_SPAN = "agentlightning.annotation"
ANNOTATION_PREFIX = "agentlightning.annotation."

OPERATION_NAME = "agentlightning.operation.name"
OPERATION_INPUT = "agentlightning.operation.input"
OPERATION_OUTPUT = "agentlightning.operation.output"

TRACED_HEADER = "x-agentlightning-traced"
"""HTTP header the tracer's ``openai`` capture adds to the calls it records, so an LLM proxy on
the way forwards them without recording them a second time."""
