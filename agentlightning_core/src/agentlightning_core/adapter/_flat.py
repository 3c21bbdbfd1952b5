"""Messages from the flattened attributes OpenLLMetry and AgentOps write on LLM spans.

Their OpenAI instrumentation records each message under an index instead of one JSON
document: ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_call_id`` /
``.tool_calls.M.{id,name,arguments}``, the choices under ``gen_ai.completion.N.*`` (plus
``.finish_reason`` and ``.refusal``) and the offered tools under
``llm.request.functions.N.{name,description,parameters}`` (OpenLLMetry) or
``gen_ai.request.functions.N.*`` (AgentOps). A list content is a JSON string.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AGENTOPS_TOOLS_PREFIX",
    "COMPLETION_PREFIX",
    "PROMPT_PREFIX",
    "TOOLS_PREFIX",
    "flat_messages",
    "flat_tools",
]

PROMPT_PREFIX = "gen_ai.prompt"
COMPLETION_PREFIX = "gen_ai.completion"
TOOLS_PREFIX = "llm.request.functions"
AGENTOPS_TOOLS_PREFIX = "gen_ai.request.functions"

_KEY = re.compile(r"^(\d+)\.(.+)$")


def _grouped(attributes: Mapping[str, Any], prefix: str) -> dict[int, dict[str, Any]]:
    """``{N: {rest: value}}`` for every ``prefix.N.rest`` attribute."""
    head = prefix + "."
    out: dict[int, dict[str, Any]] = {}
    for key, value in attributes.items():
        if not key.startswith(head):
            continue
        match = _KEY.match(key[len(head) :])
        if match is not None:
            out.setdefault(int(match[1]), {})[match[2]] = value
    return out


def _content(value: Any) -> Any:
    if isinstance(value, str) and value.startswith("["):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, list) and all(isinstance(p, dict) and "type" in p for p in decoded):
            return decoded
    return value


def _message(fields: dict[str, Any], default_role: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": fields.get("role") or default_role}
    content = fields.get("content", fields.get("refusal"))
    message["content"] = _content(content)
    if fields.get("tool_call_id") is not None:
        message["tool_call_id"] = fields["tool_call_id"]
    calls = _grouped(fields, "tool_calls")
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": call.get("name"), "arguments": call.get("arguments") or ""},
            }
            for _, call in sorted(calls.items())
        ]
    return message


def flat_messages(attributes: Mapping[str, Any], prefix: str) -> list[dict[str, Any]] | None:
    """OpenAI chat messages from ``prefix.N.*`` attributes in index order; None when there are none.

    ``prefix`` is :data:`PROMPT_PREFIX` (default role ``user``) or :data:`COMPLETION_PREFIX`
    (default role ``assistant``).
    """
    grouped = _grouped(attributes, prefix)
    if not grouped:
        return None
    default_role = "assistant" if prefix == COMPLETION_PREFIX else "user"
    return [_message(fields, default_role) for _, fields in sorted(grouped.items())]


def flat_tools(attributes: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The offered tools in OpenAI format from ``llm.request.functions.N.*`` (or AgentOps'
    ``gen_ai.request.functions.N.*``); None when none."""
    grouped = _grouped(attributes, TOOLS_PREFIX) or _grouped(attributes, AGENTOPS_TOOLS_PREFIX)
    if not grouped:
        return None
    tools = []
    for _, fields in sorted(grouped.items()):
        function: dict[str, Any] = {"name": fields.get("name")}
        if fields.get("description") is not None:
            function["description"] = fields["description"]
        parameters = fields.get("parameters")
        if isinstance(parameters, str):
            with contextlib.suppress(ValueError):
                parameters = json.loads(parameters)
        if parameters is not None:
            function["parameters"] = parameters
        tools.append({"type": "function", "function": function})
    return tools
