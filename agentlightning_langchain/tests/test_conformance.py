"""The tracer conformance suite, on an ``OtelTracer`` whose spans the LangChain run tagging sees;
and ``tracer.get_langchain_handler()`` through the plugin, or its install hint without it."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from agentlightning_core import OtelTracer, Tracer, UnknownComponentError
from agentlightning_core.plugins import reset_plugins
from agentlightning_core.testing.tracer import TracerConformance
from agentlightning_langchain import LightningCallbackHandler
from agentlightning_langchain._handler import tag_spans_with_runs


class TestOtelTracerWithLangChainRunTagging(TracerConformance):
    captures_openai = True

    @pytest.fixture
    def tracer_factory(self) -> Callable[[], Tracer]:
        def make() -> Tracer:
            tracer = OtelTracer()
            tag_spans_with_runs(tracer)
            return tracer

        return make


@pytest.fixture
def plugins_reloaded() -> Iterator[None]:
    reset_plugins()
    yield
    reset_plugins()


def test_get_langchain_handler_comes_from_the_installed_plugin(plugins_reloaded: None) -> None:
    tracer = OtelTracer()
    handler = tracer.get_langchain_handler()
    assert isinstance(handler, LightningCallbackHandler) and handler.tracer is tracer


def test_without_the_plugin_the_error_names_the_distribution_to_install(
    plugins_reloaded: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGL_DISABLE_PLUGINS", "langchain")
    with pytest.raises(
        UnknownComponentError, match=r"agentlightning-langchain, which is not installed.*pip install"
    ):
        OtelTracer().get_langchain_handler()
