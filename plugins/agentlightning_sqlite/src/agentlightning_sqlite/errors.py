"""Errors of the SQLite store."""

from __future__ import annotations

from agentlightning_core import AgentLightningError

__all__ = ["SqliteStoreError"]


class SqliteStoreError(AgentLightningError, RuntimeError):
    """The store file cannot be used: corrupt, foreign, newer schema, or locked for too long.

    The message names the file and what to do; the store never rewrites a file it does not own.
    """
