"""Errors of the PostgreSQL store."""

from __future__ import annotations

from agentlightning_core import AgentLightningError

__all__ = ["PostgresStoreError"]


class PostgresStoreError(AgentLightningError, RuntimeError):
    """The database cannot be used: unreachable, refused the login, foreign tables, or a
    schema version this plugin does not know.

    The message names the DSN (without its password) and what to do; the store never
    changes tables it does not own.
    """
