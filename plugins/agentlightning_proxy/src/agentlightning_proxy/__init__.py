"""Agent Lightning LLM proxy: records every model call of any agent into the store.

See docs/proxy.md. Public names: :class:`LLMProxy`, :class:`Upstream`, :class:`ProxyConfig`,
:func:`load_config`, :class:`ProxyStats`; span attribute names live in
:mod:`agentlightning_proxy.attributes`.
"""

from __future__ import annotations

from agentlightning_proxy._app import TRACED_HEADER, ProxyStats
from agentlightning_proxy.config import ProxyConfig, Upstream, load_config
from agentlightning_proxy.proxy import LLMProxy

__all__ = ["TRACED_HEADER", "LLMProxy", "ProxyConfig", "ProxyStats", "Upstream", "load_config"]
