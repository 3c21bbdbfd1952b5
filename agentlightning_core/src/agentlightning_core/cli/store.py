"""``agl store``: commands that act on a store given by spec (``--store NAME --path FILE``).

Subcommands register in :func:`add_parser`; each gets the shared store options from
:func:`add_store_options` and builds its store with :func:`store_from_args`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser", "add_store_options", "store_from_args"]


def add_store_options(parser: argparse.ArgumentParser, default: str = "sqlite") -> None:
    """Add ``--store`` (a registered store name) and ``--path`` (its file, when it has one)."""
    parser.add_argument("--store", default=default, help=f"registered store name (default: {default})")
    parser.add_argument("--path", help="the store's file, for stores that keep one (e.g. sqlite)")


def store_from_args(args: argparse.Namespace) -> Any:
    """Resolve the store named by ``args.store`` with ``path=args.path`` when given."""
    from agentlightning_core.plugins import resolve_component

    kwargs: dict[str, Any] = {}
    if args.path is not None:
        kwargs["path"] = args.path
    return resolve_component("store", args.store, **kwargs)


def _vacuum(args: argparse.Namespace) -> int:
    import anyio

    if args.older_than is not None and args.older_than < 0:
        raise ValueError(f"--older-than must be a number of seconds >= 0, got {args.older_than}")
    store = store_from_args(args)
    vacuum = getattr(store, "vacuum", None)
    if not callable(vacuum):
        raise TypeError(
            f"Store {args.store!r} ({type(store).__name__}) has no vacuum(): only stores that keep data "
            "on disk can be vacuumed, e.g. --store sqlite --path FILE"
        )

    async def run() -> Any:
        try:
            return await vacuum(older_than=args.older_than)
        finally:
            await store.aclose()

    result = anyio.run(run)
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from agentlightning_core.remote.server import run_server_until_signal

    store = store_from_args(args)
    run_server_until_signal(
        store,
        args.host,
        args.port,
        token=args.token,
        announce=lambda url: print(f"Serving the {args.store} store on {url} (Ctrl-C to stop)", flush=True),
    )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("store", help="maintain or serve a store")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])
    group = p.add_subparsers(dest="store_command", metavar="SUBCOMMAND")
    v = group.add_parser(
        "vacuum", help="delete old finished rollouts (optional) and compact the store's file"
    )
    add_store_options(v)
    v.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="first delete finished rollouts (with attempts and spans) that ended more than SECONDS ago",
    )
    v.set_defaults(handler=_vacuum)
    s = group.add_parser("serve", help="serve a store over HTTP for runners in other processes or machines")
    add_store_options(s, default="memory")
    s.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1, this machine only)"
    )
    s.add_argument("--port", type=int, default=4747, help="port to bind; 0 picks a free one (default: 4747)")
    s.add_argument(
        "--token",
        help="bearer token clients must send (default: $AGL_SERVER_TOKEN; none when unset)",
    )
    s.set_defaults(handler=_serve)
