"""``agl train CONFIG``: run the training a TOML/YAML config describes (see docs/config.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["add_parser"]


def _train(args: argparse.Namespace) -> int:
    from agentlightning_core.trainer.config import load_config

    config = load_config(args.config, args.set or (), require_agent=True)
    if args.command_override is not None:
        config.command = args.command_override
    trainer = config.build_trainer()
    if args.dry_run:
        described = config.describe(trainer)
        described["metrics_port"] = args.metrics_port
        print(json.dumps(described, indent=2, default=repr))
        return 0
    if args.metrics_port is not None:
        from agentlightning_core.metrics import instrument_store

        trainer.store = instrument_store(trainer.store, serve=(args.metrics_host, args.metrics_port))
    algorithm = config.run(trainer)
    print(f"agl train: {config.command} finished ({type(algorithm).__name__})", flush=True)
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="run the training a config file describes",
        description="Run the training a TOML or YAML config describes: agent, datasets and Trainer arguments.",
    )
    p.add_argument("config", help="the config file (.toml, .yaml or .yml)")
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="override a key, e.g. --set trainer.n_runners=4 (VALUE is JSON when it parses, else text); repeatable",
    )
    p.add_argument("--dry-run", action="store_true", help="resolve and print everything, run nothing")
    p.add_argument(
        "--dev",
        dest="command_override",
        action="store_const",
        const="dev",
        help="run Trainer.dev instead of fit",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics of the run at http://HOST:PORT/metrics (0: any free port; needs "
        "agentlightning-core[metrics])",
    )
    p.add_argument(
        "--metrics-host", default="127.0.0.1", help="address of the metrics server (default: 127.0.0.1)"
    )
    p.set_defaults(handler=_train)
