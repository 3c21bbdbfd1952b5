"""Plugin entry point of agentlightning-local: the ``agl local`` commands."""

from __future__ import annotations

import argparse

from agentlightning_core import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agentlightning_local.cli import add_commands

    add_commands(subparsers)
