"""``AgentOpsTracer``: AgentOps' instrumentors and decorators recording into the store, offline.

It is an :class:`~agentlightning_core.OtelTracer` (same span processor, rollout/attempt
attribution and flush at the end of each trace) whose provider AgentOps writes to:

- AgentOps' instrumentors (OpenAI, Anthropic, CrewAI, AG2, ...) are attached to the tracer's
  own ``TracerProvider``; the global provider is left alone;
- AgentOps' decorators (``@agent``, ``@operation``/``@task``, ``@tool``, ``@workflow``) record
  into the same provider: AgentOps' tracing core is bound to it for as long as the tracer is
  initialised (``agentops.init()`` is never called: it would install a global provider that
  exports to AgentOps' servers);
- nothing leaves the machine unless ``export_to_agentops=True`` with an ``api_key``.

AgentOps' instrumentors and tracing core are process-wide, so one ``AgentOpsTracer`` is
initialised per process at a time (the runners of a process share it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry.sdk.trace import SpanProcessor

from agentlightning_agentops._compat import check_agentops_version
from agentlightning_agentops._instrumentors import Instrumented, InstrumentorSpec, instrument
from agentlightning_agentops._tool_calls import ToolCallPatch
from agentlightning_core import OtelTracer, semconv

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import Span as SdkSpan

__all__ = ["AgentOpsExportError", "AgentOpsTracer"]

logger = logging.getLogger(__name__)

AGENTOPS_API_ENDPOINT = "https://api.agentops.ai"
AGENTOPS_EXPORTER_ENDPOINT = "https://otlp.agentops.ai/v1/traces"
_SPAN_KIND = "agentops.span.kind"
_OPERATION_NAME = "operation.name"

_owner_lock = threading.Lock()
_owner: AgentOpsTracer | None = None


class AgentOpsExportError(RuntimeError):
    """The opt-in export to AgentOps could not be set up (API key refused or unreachable)."""


class _AgentNames(SpanProcessor):
    """Names the agent of an AgentOps ``@agent`` span (``gen_ai.agent.name``) so adapters'
    ``agent_match`` sees it; other spans are left as they are."""

    def on_start(self, span: SdkSpan, parent_context: Context | None = None) -> None:
        attributes = span.attributes
        if attributes and attributes.get(_SPAN_KIND) == "agent" and semconv.AGENT_NAME not in attributes:
            name = attributes.get(_OPERATION_NAME)
            if isinstance(name, str) and name:
                span.set_attribute(semconv.AGENT_NAME, name)


class AgentOpsTracer(OtelTracer):
    """The ``agentops`` tracer.

    :param instrument: ``"auto"`` (default): every AgentOps instrumentor whose library is
        installed (one that fails is logged by name and listed in :attr:`failed_instrumentors`);
        or a list of names of AgentOps' catalogue (``"openai"``, ``"anthropic"``,
        ``"google.genai"``, ``"crewai"``, ``"autogen"``, ``"agents"``, ``"agno"``,
        ``"smolagents"``, ``"langgraph"``, ...), ``"package.module:Class"`` paths or instances
        of OpenTelemetry instrumentors, each of which must load (else ``InstrumentorLoadError``
        at ``init``); ``[]`` for none.
    :param decorators: record AgentOps' decorators (``@agent``, ``@operation``, ``@tool``, ...).
    :param instrument_openai: also the core's capture of the ``openai`` client (``chat {model}``
        spans with token ids); off by default since AgentOps' ``openai`` instrumentor records
        the same calls (``openai.chat.completion`` spans).
    :param export_to_agentops: also send the spans to AgentOps' servers (needs ``api_key``).
    :param api_key: the AgentOps API key, used only with ``export_to_agentops``.
    :param api_endpoint: AgentOps' API (authentication) for the export.
    :param exporter_endpoint: AgentOps' OTLP endpoint for the export.
    :param otel_options: the remaining options of :class:`~agentlightning_core.OtelTracer`.
    """

    def __init__(
        self,
        *,
        instrument: Sequence[InstrumentorSpec] | Literal["auto"] = "auto",
        decorators: bool = True,
        instrument_openai: bool = False,
        export_to_agentops: bool = False,
        api_key: str | None = None,
        api_endpoint: str = AGENTOPS_API_ENDPOINT,
        exporter_endpoint: str = AGENTOPS_EXPORTER_ENDPOINT,
        **otel_options: Any,
    ) -> None:
        if otel_options.get("set_global_provider"):
            raise ValueError(
                "AgentOpsTracer keeps its provider to itself (set_global_provider=True is not supported); "
                "use the `otel` tracer with set_global_provider=True for global recording"
            )
        if isinstance(instrument, str) and instrument != "auto":
            raise ValueError(f"instrument must be 'auto' or a list of instrumentors, got {instrument!r}")
        if export_to_agentops and not api_key:
            raise ValueError(
                "export_to_agentops=True needs api_key= (your AgentOps API key); without the export, "
                "spans stay on this machine"
            )
        super().__init__(instrument_openai=instrument_openai, **otel_options)
        self.instrument: Sequence[InstrumentorSpec] | Literal["auto"] = (
            instrument if instrument == "auto" else list(instrument)
        )
        self.decorators = decorators
        self.export_to_agentops = export_to_agentops
        self.api_endpoint = api_endpoint
        self.exporter_endpoint = exporter_endpoint
        self._api_key = api_key
        self.agentops_version: str | None = None
        self._agentops_instruments = Instrumented()
        self._bound_core = False
        self._tool_calls = ToolCallPatch(self.provider)
        self._bind_lock = threading.Lock()
        self._bound = False
        self.provider.add_span_processor(_AgentNames())

    @property
    def instrumentors(self) -> list[str]:
        """Names of the instrumentors attached by :meth:`init`."""
        return list(self._agentops_instruments.active)

    @property
    def failed_instrumentors(self) -> Mapping[str, str]:
        """Instrumentors that failed to load at :meth:`init` (``instrument="auto"``): name -> reason."""
        return dict(self._agentops_instruments.failed)

    # --- lifecycle -----------------------------------------------------------------------

    def init(self) -> None:
        global _owner
        with self._bind_lock:
            if self._bound:
                return
            self.agentops_version = check_agentops_version()
            with _owner_lock:
                if _owner is not None and _owner is not self:
                    raise RuntimeError(
                        "Another AgentOpsTracer is initialised in this process: AgentOps' instrumentors "
                        "and tracing core are process-wide. Share that tracer, or call its teardown() first"
                    )
                _owner = self
            try:
                if self.decorators:
                    self._bind_core()
                self._agentops_instruments = instrument(self.instrument, self.provider)
                if "openai" in self._agentops_instruments.active:
                    self._tool_calls.apply()
                if self.export_to_agentops:
                    self._add_agentops_export()
                super().init()
            except BaseException:
                self._release()
                raise
            self._bound = True

    def teardown(self) -> None:
        with self._bind_lock:
            self._release()
            self._bound = False
        super().teardown()

    def _release(self) -> None:
        global _owner
        self._agentops_instruments.uninstrument()
        self._tool_calls.restore()
        if self._bound_core:
            self._unbind_core()
        with _owner_lock:
            if _owner is self:
                _owner = None

    # --- AgentOps' tracing core ----------------------------------------------------------

    def _bind_core(self) -> None:
        """Point AgentOps' tracing core (what its decorators record through) at our provider."""
        from agentops.sdk.core import tracer as core

        if core.initialized:
            raise RuntimeError(
                "agentops.init() was called in this process: it sends spans to AgentOps through a global "
                "provider. Remove it; AgentOpsTracer records AgentOps' spans into the store "
                "(export_to_agentops=True with api_key= also sends them to AgentOps)"
            )
        provider = self.provider

        def get_tracer(name: str = "agentops") -> Any:
            return provider.get_tracer(name)

        core.provider = provider
        core._config = {
            "service_name": "agentlightning",
            "project_id": None,
            "api_key": None,
            "exporter_endpoint": None,
            "metrics_endpoint": None,
            "max_queue_size": 512,
            "max_wait_time": 5000,
            "export_flush_interval": 1000,
        }
        core.get_tracer = get_tracer  # the only instance of its class
        core._initialized = True
        self._bound_core = True

    def _unbind_core(self) -> None:
        from agentops.sdk.core import tracer as core

        core._initialized = False
        core.__dict__.pop("get_tracer", None)
        core.provider = None
        core._config = None
        self._bound_core = False

    # --- opt-in export -------------------------------------------------------------------

    def _add_agentops_export(self) -> None:
        from agentops.client.api import ApiClient
        from agentops.client.http.http_client import HttpClient
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        api_key = self._api_key
        assert api_key is not None

        async def fetch_token() -> Any:
            try:
                return await ApiClient(self.api_endpoint).v3.fetch_auth_token(api_key)
            finally:
                await HttpClient.close_async_session()

        result: list[Any] = []
        # A thread of its own: init may be called from a running event loop.
        thread = threading.Thread(target=lambda: result.append(asyncio.run(fetch_token())), daemon=True)
        thread.start()
        thread.join(60.0)
        response = result[0] if result else None
        if not isinstance(response, Mapping) or not response.get("token"):
            raise AgentOpsExportError(
                f"AgentOps at {self.api_endpoint} did not accept the API key (or could not be reached); "
                "check api_key=, or drop export_to_agentops=True to keep spans on this machine"
            )
        # OpenTelemetry's own OTLP exporter: AgentOps' AuthenticatedOTLPExporter relies on
        # internals of older opentelemetry-exporter-otlp releases and fails on every export here.
        exporter = OTLPSpanExporter(
            endpoint=self.exporter_endpoint, headers={"Authorization": f"Bearer {response['token']}"}
        )
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        logger.info("AgentOpsTracer also exports spans to AgentOps at %s", self.exporter_endpoint)
