"""Plugin entry point: registers the ``sqlite`` store (imported lazily on first use) and ``agl sqlite``."""

from __future__ import annotations

import argparse

from agentlightning_core import Register, hookimpl

__all__ = ["register_commands", "register_stores"]


@hookimpl
def register_stores(register: Register) -> None:
    register("sqlite", "agentlightning_sqlite.store:SqliteLightningStore")


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agentlightning_sqlite.cli import add_commands

    add_commands(subparsers)
