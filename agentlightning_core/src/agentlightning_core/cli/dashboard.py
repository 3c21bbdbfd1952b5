"""``agl dashboard``: serve the read-only dashboard of a store (docs/dashboard.md)."""

from __future__ import annotations

import argparse
from typing import Any

from agentlightning_core.cli.store import add_store_options, store_from_args
from agentlightning_core.remote._config import DEFAULT_DASHBOARD_PORT, DEFAULT_HOST, TOKEN_ENV

__all__ = ["add_parser"]


def _run(args: argparse.Namespace) -> int:
    from agentlightning_core.dashboard import PREFIX, run_dashboard_until_signal

    store = store_from_args(args)
    run_dashboard_until_signal(
        store,
        args.host,
        args.port,
        token=args.token,
        announce=lambda url: print(
            f"Dashboard of the {args.store} store on {url}{PREFIX}/ (Ctrl-C to stop)", flush=True
        ),
    )
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "dashboard",
        help="serve a read-only dashboard of a store (rollouts, traces, resources, workers, rewards)",
        description="Serve read-only dashboard pages of a store (docs/dashboard.md); a run may write to the store meanwhile.",
    )
    add_store_options(p)
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default: {DEFAULT_HOST})")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_DASHBOARD_PORT,
        help=f"port; 0 picks a free one (default: {DEFAULT_DASHBOARD_PORT})",
    )
    p.add_argument("--token", help=f"token browsers must give once (default: ${TOKEN_ENV}; none when unset)")
    p.set_defaults(handler=_run)
