"""Settings shared by the store server, its client, ``agl store serve`` and the ``cs`` strategy.

Light on purpose (standard library only), so the CLI and the strategy can import it freely.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "LOCAL_HOSTS",
    "TOKEN_ENV",
    "base_url",
    "event_loop_options",
    "token_from_env",
]

TOKEN_ENV = "AGL_SERVER_TOKEN"
"""Environment variable holding the bearer token, read when no token is given."""

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4747
DEFAULT_DASHBOARD_PORT = 4748
"""Port of ``agl dashboard`` (the dashboard alone; ``agl store serve`` serves it on its own port)."""
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""Hosts only this machine reaches: serving elsewhere without a token logs a warning."""


def base_url(host: str, port: int) -> str:
    """``http://host:port``, with an IPv6 host in brackets (``http://[::1]:4747``)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


DEFAULT_URL = base_url(DEFAULT_HOST, DEFAULT_PORT)


def token_from_env(token: str | None) -> str | None:
    """``token`` when given (``""`` means "no token"), else ``$AGL_SERVER_TOKEN``, else None."""
    if token is not None:
        return token or None
    return os.environ.get(TOKEN_ENV) or None


def event_loop_options() -> dict[str, Any]:
    """anyio ``backend_options`` for asyncio: uvloop when it is installed."""
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return {}
    return {"use_uvloop": True}
