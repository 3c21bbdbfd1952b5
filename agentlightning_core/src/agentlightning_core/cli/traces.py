"""``agl traces show ROLLOUT_ID --store SPEC``: print the span tree of a rollout."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser", "parse_store_spec", "render_trace"]


def parse_store_spec(text: str) -> Any:
    """A store spec from the command line: a JSON object when it starts with ``{``, else a
    registered name or ``"package.module:Class"``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"--store {text!r} starts with '{{' but is not valid JSON: {exc}") from exc
    return text


async def render_trace(store_spec: Any, rollout_id: str, attempt: str | None, fmt: str) -> str:
    """The rollout's spans as a text tree or SVG document."""
    from agentlightning_core.adapter.tree import TraceTree
    from agentlightning_core.plugins import resolve_component

    store = resolve_component("store", store_spec)
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

    out = anyio.run(render_trace, parse_store_spec(args.store), args.rollout_id, args.attempt, args.format)
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
    show.add_argument(
        "--store",
        required=True,
        help='store spec: a name (sqlite), module:Class, or JSON like \'{"type": "sqlite", "path": "x.db"}\'',
    )
    show.add_argument("--attempt", default=None, help="an attempt id or 'latest' (default: all attempts)")
    show.add_argument("--format", choices=("text", "svg"), default="text")
    show.add_argument("-o", "--output", help="write to this file instead of standard output")
    show.set_defaults(handler=_show)
