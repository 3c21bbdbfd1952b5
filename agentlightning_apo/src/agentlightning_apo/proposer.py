"""Proposing a revised prompt: the meta-prompts, the optimizer's LLM calls, the checks on their output."""

from __future__ import annotations

import json
import logging
import re
import string
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

__all__ = [
    "APOError",
    "EditMode",
    "Example",
    "MetaPrompts",
    "OptimizerLLM",
    "extract_prompt",
    "format_examples",
    "placeholder_fields",
]

logger = logging.getLogger(__name__)

EditMode = Literal["critique_then_edit", "rewrite"]

_FIELDS = re.compile(r"\{(prompt|examples|critique|placeholders)\}")
_TAGGED = re.compile(r"<prompt>\s*(.*?)\s*(?:</prompt>|$)", re.DOTALL | re.IGNORECASE)
_FENCED = re.compile(r"```[a-zA-Z]*\n(.*?)```", re.DOTALL)


class APOError(RuntimeError):
    """APO cannot go on (unreachable optimizer endpoint, rate limits that did not clear, ...)."""


def _read_prompt(path: str | Path | None, default: str) -> str:
    if path is None:
        return resources.files("agentlightning_apo").joinpath("prompts", default).read_text(encoding="utf-8")
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"APO prompt file {str(file)!r} does not exist; give the path of a text file")
    return file.read_text(encoding="utf-8")


@attrs.define
class MetaPrompts:
    """The optimizer's own prompts, read from files (the packaged defaults unless given).

    Fields in braces are filled in: ``{prompt}`` (the template being improved),
    ``{examples}`` (the transcripts), ``{critique}`` (edit only) and ``{placeholders}``.
    """

    rewrite: str
    critique: str
    edit: str

    @classmethod
    def load(
        cls,
        gradient_prompts: str | Path | None = None,
        edit_prompts: str | Path | None = None,
        rewrite_prompts: str | Path | None = None,
    ) -> MetaPrompts:
        return cls(
            rewrite=_read_prompt(rewrite_prompts, "rewrite.md"),
            critique=_read_prompt(gradient_prompts, "critique.md"),
            edit=_read_prompt(edit_prompts, "edit.md"),
        )

    @staticmethod
    def render(template: str, values: Mapping[str, str]) -> str:
        """Fill the known fields in one pass (inserted text is never re-scanned)."""
        return _FIELDS.sub(lambda m: values.get(m[1], m[0]), template)


@attrs.define
class Example:
    """One rollout as the optimizer sees it."""

    task: Any
    reward: float
    conversation: list[dict[str, Any]]


def format_examples(examples: list[Example], max_conversations: int, max_tokens: int) -> str:
    """Lowest rewards first, at most ``max_conversations``, cut to about ``max_tokens`` tokens overall.

    The chosen examples are shown grouped by expected answer, so what the tasks of one answer
    share is easy to see, even for a small optimizer model. A token is counted as 4
    characters: close enough to bound the context of any chat model.
    """
    chosen = sorted(examples, key=lambda e: e.reward)[:max_conversations]
    order = {answer: n for n, answer in enumerate(dict.fromkeys(_expected(e.task) for e in chosen))}
    chosen.sort(key=lambda e: order[_expected(e.task)])  # stable: worst first within a group
    budget = max(max_tokens * 4 // max(len(chosen), 1), 200)
    parts = []
    for n, example in enumerate(chosen, 1):
        expected = _expected(example.task)
        lines = [
            f"--- Example {n} (score {example.reward:g}) ---",
            f"Task: {_short(_task_text(example.task), budget // 3)}",
        ]
        if expected is not None:
            lines.append(f"Expected answer: {expected}")
        for message in example.conversation:
            if message.get("role") == "system":
                continue  # the system prompt is the template itself, shown once above
            lines.append(f"{message.get('role', '?')}: {_as_text(message.get('content'))}")
        parts.append(_short("\n".join(lines), budget))
    return "\n\n".join(parts)


_EXPECTED_KEYS = ("answer", "expected", "label", "target", "ground_truth")


def _expected(task: Any) -> str | None:
    """The expected answer of a dict task under a conventional key, spelled out for small models."""
    key = _expected_key(task)
    return None if key is None else _as_text(task[key])


def _expected_key(task: Any) -> str | None:
    if isinstance(task, dict):
        return next((key for key in _EXPECTED_KEYS if key in task), None)
    return None


def _task_text(task: Any) -> str:
    """The task as shown to the optimizer: without its expected answer (shown on its own line)."""
    key = _expected_key(task)
    if key is None:
        return _as_text(task)
    rest = {k: v for k, v in task.items() if k != key}
    return _as_text(next(iter(rest.values())) if len(rest) == 1 else rest)


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 15, 0)] + " ...[truncated]"


def placeholder_fields(template: str) -> list[str] | None:
    """The template's replacement fields in order (None when it is not a valid f-string)."""
    try:
        fields = [name for _, name, spec, conv in string.Formatter().parse(template) if name is not None]
        template.format(**{f: "" for f in fields if f and f.isidentifier()})
    except (ValueError, KeyError, IndexError, AttributeError):
        return None
    return fields


def extract_prompt(reply: str) -> str:
    """The revised template from a reply: inside ``<prompt>`` tags, else a code fence, else the reply."""
    tagged = _TAGGED.search(reply)
    if tagged:
        return tagged.group(1).strip()
    fenced = _FENCED.search(reply)
    return (fenced.group(1) if fenced else reply).strip()


@attrs.define
class OptimizerLLM:
    """Chat calls of the optimizer with backoff on rate limits; counts calls and tokens."""

    client: Any
    """An ``openai.AsyncOpenAI`` (or compatible) client."""
    max_retries: int = 5
    backoff_seconds: float = 1.0
    calls: int = 0
    tokens: int = 0
    rate_limit_retries: int = 0

    async def chat(self, model: str, prompt: str, temperature: float, max_tokens: int) -> tuple[str, int]:
        """Send one user message; returns the reply text and the tokens the call used."""
        import openai

        delay = self.backoff_seconds
        for attempt in range(self.max_retries + 1):
            try:
                response = await self.client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=temperature,
                    max_tokens=max_tokens,
                )
                break
            except openai.RateLimitError as exc:
                if attempt == self.max_retries:
                    raise APOError(
                        f"The optimizer endpoint kept rate-limiting ({self.max_retries} retries with backoff): {exc}. "
                        "Lower the load (fewer runners, smaller batches) or raise your quota."
                    ) from exc
                self.rate_limit_retries += 1
                logger.warning("APO: optimizer rate-limited; retrying in %.1f s", delay)
                await anyio.sleep(delay)
                delay *= 2
            except openai.APIConnectionError as exc:
                url = getattr(self.client, "base_url", "?")
                raise APOError(
                    f"Cannot reach the optimizer endpoint {url}: {exc}. Start the server, or point APO at a "
                    "reachable one: APO(client=openai.AsyncOpenAI(base_url=..., api_key=...)) or an LLM resource "
                    "in initial_resources (APO(llm_resource=NAME))."
                ) from exc
        self.calls += 1
        usage = getattr(response, "usage", None)
        used = int(getattr(usage, "total_tokens", 0) or 0)
        self.tokens += used
        content = response.choices[0].message.content if response.choices else None
        return (content or "").strip(), used
