"""``agl store``: commands that act on a store given by spec (``--store SPEC [--path FILE]``).

Store plugins add their own maintenance commands through the ``register_commands`` hook.

Every command that takes a store (here and ``agl traces``) gets the same options from
:func:`add_store_options` and builds the store with :func:`store_from_args`.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from agentlightning_core.remote._config import DEFAULT_HOST, DEFAULT_PORT, TOKEN_ENV

__all__ = ["add_parser", "add_store_options", "parse_store_spec", "store_from_args", "store_spec_from_args"]

_SPEC_HELP = (
    "the store: a registered name (see: agl components stores), package.module:Class, "
    'or a JSON object like \'{"type": NAME, "path": "runs.db"}\''
)


def add_store_options(parser: argparse.ArgumentParser, default: str | None = None) -> None:
    """Add ``--store SPEC`` (required when ``default`` is None) and ``--path FILE``."""
    if default is None:
        parser.add_argument("--store", required=True, help=_SPEC_HELP)
    else:
        parser.add_argument("--store", default=default, help=f"{_SPEC_HELP} (default: {default})")
    parser.add_argument("--path", help="the store's file, for stores that keep one")


def parse_store_spec(text: str) -> Any:
    """A store spec from the command line: a JSON object when it starts with ``{``, else a
    registered name or ``"package.module:Class"``."""
    text = text.strip()
    if text.startswith("{"):
        try:
            spec = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"--store {text!r} starts with '{{' but is not valid JSON: {exc}") from exc
        if not isinstance(spec, dict):
            raise ValueError(f"--store {text!r} must be one JSON object")
        return spec
    return text


def store_spec_from_args(args: argparse.Namespace) -> Any:
    """The spec of ``--store``, with ``--path`` as the store's ``path`` argument when given."""
    spec = parse_store_spec(args.store)
    if args.path is None:
        return spec
    if isinstance(spec, dict):
        if "path" in spec and spec["path"] != args.path:
            raise ValueError(
                f"--path {args.path!r} contradicts the path {spec['path']!r} in --store; give the path once"
            )
        return {**spec, "path": args.path}
    return {"type": spec, "path": args.path}


def store_from_args(args: argparse.Namespace) -> Any:
    """The store that ``--store``/``--path`` name (not started)."""
    from agentlightning_core.plugins import resolve_component

    return resolve_component("store", store_spec_from_args(args))


def parse_otlp_option(text: str | None) -> Any:
    """The ``otlp=`` option of ``--otlp``: a JSON object when it starts with ``{``, else a URL."""
    if text is None:
        return None
    text = text.strip()
    if not text.startswith("{"):
        return text
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--otlp {text!r} starts with '{{' but is not valid JSON: {exc}") from exc
    if not isinstance(spec, dict):
        raise ValueError(f"--otlp {text!r} must be one JSON object")
    return spec


def _serve(args: argparse.Namespace) -> int:
    from agentlightning_core.remote.server import run_server_processes, run_server_until_signal
    from agentlightning_core.store.memory import InMemoryLightningStore

    store = store_from_args(args)
    pages = None
    if not args.no_dashboard:
        from agentlightning_core.dashboard import DashboardApp

        pages = DashboardApp
    if args.workers != 1:
        if args.workers < 1:
            raise ValueError(f"--workers must be a number of processes >= 1, got {args.workers}")
        if isinstance(store, InMemoryLightningStore):
            raise ValueError(
                f"--workers {args.workers} needs a store that keeps its data outside the process (a database "
                "file or server): each server process would have its own empty --store memory"
            )
        return run_server_processes(
            store_spec_from_args(args),
            args.host,
            args.port,
            workers=args.workers,
            token=args.token,
            otlp=parse_otlp_option(args.otlp),
            metrics=args.metrics,
            pages=pages,
            announce=lambda url: print(
                f"Serving the {args.store} store on {url} from {args.workers} processes (Ctrl-C to stop)",
                flush=True,
            ),
        )
    run_server_until_signal(
        store,
        args.host,
        args.port,
        token=args.token,
        otlp=parse_otlp_option(args.otlp),
        metrics=args.metrics,
        announce=lambda url: print(f"Serving the {args.store} store on {url} (Ctrl-C to stop)", flush=True),
        pages=pages,
    )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("store", help="serve a store")
    p.set_defaults(handler=lambda args: (p.print_help(), 2)[1])
    group = p.add_subparsers(dest="store_command", metavar="SUBCOMMAND")
    s = group.add_parser("serve", help="serve a store over HTTP for runners in other processes or machines")
    add_store_options(s, default="memory")
    s.add_argument(
        "--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST}, this machine only)"
    )
    s.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to bind; 0 picks a free one (default: {DEFAULT_PORT})",
    )
    s.add_argument(
        "--token",
        help=f"bearer token clients must send (default: ${TOKEN_ENV}; none when unset)",
    )
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="server processes sharing the port, each with its own connection to the store; for stores "
        "that several processes can share (default: 1)",
    )
    s.add_argument(
        "--otlp",
        metavar="URL_OR_JSON",
        help="also forward every stored span to this OTLP/HTTP endpoint (a URL, or a JSON object of "
        'OtlpExporter options like \'{"endpoint": URL, "headers": {...}, "metrics": false}\'; see docs/otlp.md)',
    )
    s.add_argument(
        "--no-metrics",
        dest="metrics",
        action="store_false",
        help="do not serve Prometheus metrics at /metrics (served by default with prometheus-client installed)",
    )
    s.add_argument(
        "--no-dashboard",
        action="store_true",
        help="do not serve the read-only dashboard at / (docs/dashboard.md)",
    )
    s.set_defaults(handler=_serve)
