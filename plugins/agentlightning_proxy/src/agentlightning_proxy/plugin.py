"""Plugin entry point of agentlightning-proxy: the ``agl proxy`` commands."""

from __future__ import annotations

import argparse

from agentlightning_core import hookimpl

__all__ = ["register_commands"]


@hookimpl
def register_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from agentlightning_proxy.cli import add_commands

    add_commands(subparsers)
