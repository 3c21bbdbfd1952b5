"""Agent Lightning for LangChain and LangGraph: runs become spans, spans become training data.

Pass the handler in a run's config (``config={"callbacks": [handler]}``), or get it from the
tracer as the earlier API did: ``tracer.get_langchain_handler()``. Names are imported on first
use, so importing the package does not import LangChain.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = ["PARENT_RUN_ID", "RUN_ID", "RUN_TYPE", "AsyncLightningCallbackHandler", "LightningCallbackHandler"]

_LAZY = {
    "PARENT_RUN_ID": "_context",
    "RUN_ID": "_context",
    "RUN_TYPE": "_handler",
    "AsyncLightningCallbackHandler": "_handler",
    "LightningCallbackHandler": "_handler",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agentlightning_langchain' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"agentlightning_langchain.{module}"), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:
    from agentlightning_langchain._context import PARENT_RUN_ID, RUN_ID
    from agentlightning_langchain._handler import (
        RUN_TYPE,
        AsyncLightningCallbackHandler,
        LightningCallbackHandler,
    )
