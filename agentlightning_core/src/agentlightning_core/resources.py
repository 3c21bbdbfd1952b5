"""Resources an algorithm improves and agents use: LLM endpoints and prompt templates."""

from __future__ import annotations

import string
from typing import Any, ClassVar, Literal

import attrs

from agentlightning_core.codec import JsonModel

__all__ = [
    "LLM",
    "NamedResources",
    "PromptTemplate",
    "ProxyLLM",
    "Resource",
    "ResourcesUpdate",
]


def _non_empty(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{type(instance).__name__}.{attribute.name} must be a non-empty string, got {value!r}"
        )


@attrs.define(slots=True)
class Resource(JsonModel):
    """Base of every resource; ``resource_type`` tells the kinds apart in JSON."""

    resource_type_tag: ClassVar[str | None] = None


@attrs.define(slots=True)
class LLM(Resource):
    """An OpenAI-compatible model endpoint."""

    resource_type_tag: ClassVar[str | None] = "llm"

    endpoint: str = attrs.field(validator=_non_empty)
    model: str = attrs.field(validator=_non_empty)
    sampling_parameters: dict[str, Any] = attrs.field(factory=dict)
    api_key: str | None = None
    resource_type: str = attrs.field(default="llm")

    def __attrs_post_init__(self) -> None:
        if self.resource_type != self.resource_type_tag:
            raise ValueError(
                f"{type(self).__name__}.resource_type must be {self.resource_type_tag!r}, got {self.resource_type!r}"
            )

    def get_base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:
        """The URL an OpenAI client should use as ``base_url``."""
        return self.endpoint


@attrs.define(slots=True)
class ProxyLLM(LLM):
    """An LLM reached through the Agent Lightning proxy, which records calls per rollout/attempt."""

    resource_type_tag: ClassVar[str | None] = "proxy_llm"
    resource_type: str = attrs.field(default="proxy_llm")

    def get_base_url(self, rollout_id: str | None = None, attempt_id: str | None = None) -> str:
        """``endpoint`` with ``/rollout/{rollout_id}/attempt/{attempt_id}`` inserted before a trailing ``/v1``."""
        if rollout_id is None or attempt_id is None:
            raise ValueError("ProxyLLM.get_base_url needs both rollout_id and attempt_id to route the call")
        base = self.endpoint.rstrip("/")
        suffix = ""
        if base.endswith("/v1"):
            base, suffix = base[:-3], "/v1"
        return f"{base}/rollout/{rollout_id}/attempt/{attempt_id}{suffix}"

    def for_attempt(self, rollout_id: str, attempt_id: str) -> LLM:
        """The plain ``LLM`` one attempt uses: its calls reach the proxy attributed to it."""
        return LLM(
            endpoint=self.get_base_url(rollout_id, attempt_id),
            model=self.model,
            sampling_parameters=dict(self.sampling_parameters),
            api_key=self.api_key,
        )


PromptEngine = Literal["f-string", "jinja"]


@attrs.define(slots=True)
class PromptTemplate(Resource):
    """A prompt with placeholders; ``engine`` is ``"f-string"`` (``{name}``) or ``"jinja"`` (``{{ name }}``)."""

    resource_type_tag: ClassVar[str | None] = "prompt_template"

    template: str
    engine: PromptEngine = "f-string"
    resource_type: str = attrs.field(default="prompt_template")

    def __attrs_post_init__(self) -> None:
        if self.resource_type != self.resource_type_tag:
            raise ValueError(
                f"PromptTemplate.resource_type must be 'prompt_template', got {self.resource_type!r}"
            )
        if not isinstance(self.template, str):
            raise TypeError(f"PromptTemplate.template must be a string, got {type(self.template).__name__}")
        if self.engine == "f-string":
            try:
                list(string.Formatter().parse(self.template))
            except ValueError as exc:
                raise ValueError(
                    f"PromptTemplate {self.template!r:.80} is not a valid f-string template: {exc}"
                ) from None
        elif self.engine != "jinja":
            raise ValueError(f"Unknown PromptTemplate engine {self.engine!r}; expected 'f-string' or 'jinja'")

    @property
    def placeholders(self) -> list[str]:
        """Names the f-string template expects (empty for jinja templates)."""
        if self.engine != "f-string":
            return []
        return [name for _, name, _, _ in string.Formatter().parse(self.template) if name]

    def format(self, **kwargs: Any) -> str:
        """Render the template; a missing placeholder raises ``KeyError`` naming it."""
        if self.engine == "f-string":
            try:
                return self.template.format(**kwargs)
            except KeyError as exc:
                raise KeyError(
                    f"PromptTemplate needs a value for {exc.args[0]!r}; given: {sorted(kwargs)}"
                ) from None
        try:
            import jinja2
        except ImportError:
            from agentlightning_core.plugins import install_hint

            raise ImportError(
                "PromptTemplate(engine='jinja') needs jinja2. Install it with: "
                + install_hint("agentlightning-core", "jinja")
            ) from None
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)
        rendered: str = env.from_string(self.template).render(**kwargs)
        return rendered


NamedResources = dict[str, LLM | ProxyLLM | PromptTemplate]
"""Resources by the name agents ask for them (``"llm"``, ``"prompt_template"``, ...)."""


def _named_resources(value: Any) -> dict[str, Resource]:
    if not isinstance(value, dict):
        raise TypeError(f"resources must be a dict of name -> resource, got {type(value).__name__}")
    for name, res in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"resource names must be non-empty strings, got {name!r}")
        if not isinstance(res, Resource):
            raise TypeError(
                f"resource {name!r} must be an LLM, ProxyLLM or PromptTemplate, got {type(res).__name__}"
            )
    return value


@attrs.define(slots=True)
class ResourcesUpdate(JsonModel):
    """A versioned snapshot of named resources stored under ``resources_id``."""

    resources_id: str = attrs.field(validator=_non_empty)
    create_time: float
    update_time: float
    version: int
    resources: NamedResources = attrs.field(converter=_named_resources)
