"""``agl traces show ROLLOUT_ID --store SPEC [--path FILE]``: print the span tree of a rollout."""

from __future__ import annotations

import argparse
from typing import Any

from agentlightning_core.cli.store import add_store_options, store_spec_from_args

__all__ = ["add_parser", "render_trace"]


async def render_trace(store_spec: Any, rollout_id: str, attempt: str | None, fmt: str) -> str:
    """The rollout's spans as a text tree or SVG document."""
    from agentlightning_core.adapter.tree import TraceTree
    from agentlightning_core.cli.rollouts import open_read_only_store

    store = open_read_only_store(store_spec)
    async with store:
        spans = (await store.query_spans(rollout_id, attempt)).items
    if not spans:
        raise LookupError(
            f"Rollout {rollout_id!r} has no spans (attempt: {attempt or 'all'}) in store {store_spec!r}"
        )
    tree = TraceTree.from_spans(spans)
    return tree.to_svg() if fmt == "svg" else tree.to_text()


def _show(args: argparse.Namespace) -> int:
    import anyio

    out = anyio.run(render_trace, store_spec_from_args(args), args.rollout_id, args.attempt, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(out + "\n")
    else:
        print(out)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("traces", help="inspect recorded traces")
    tsub = p.add_subparsers(dest="traces_command", metavar="SUBCOMMAND", required=True)
    show = tsub.add_parser("show", help="print the span tree of a rollout")
    show.add_argument("rollout_id")
    add_store_options(show, default=None)
    show.add_argument("--attempt", default=None, help="an attempt id or 'latest' (default: all attempts)")
    show.add_argument("--format", choices=("text", "svg"), default="text")
    show.add_argument("-o", "--output", help="write to this file instead of standard output")
    show.set_defaults(handler=_show)
