"""``agl sqlite vacuum --path FILE [--older-than SECONDS]``, added through ``register_commands``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "file_sizes"]

_SUFFIXES = ("", "-wal", "-shm")


def file_sizes(path: Path) -> dict[str, int]:
    """Bytes of the database file and of its ``-wal``/``-shm`` companions that exist now."""
    sizes = {}
    for suffix in _SUFFIXES:
        companion = path.with_name(path.name + suffix)
        if companion.is_file():
            sizes[str(companion)] = companion.stat().st_size
    return sizes


def _vacuum(args: argparse.Namespace) -> int:
    import anyio

    from agentlightning_sqlite.store import SqliteLightningStore

    if args.older_than is not None and args.older_than < 0:
        raise ValueError(f"--older-than must be a number of seconds >= 0, got {args.older_than}")
    path = Path(args.path)
    if not path.is_file():
        raise FileNotFoundError(f"No SQLite store at --path {str(path)!r}: the file does not exist")
    before = file_sizes(path)

    async def run() -> dict[str, Any]:
        async with SqliteLightningStore(path) as store:
            result: dict[str, Any] = await store.vacuum(older_than=args.older_than)
        return result

    result = anyio.run(run)
    after = file_sizes(path)  # measured once the store is closed: what is really left on disk
    report = {
        "deleted_rollouts": result["deleted_rollouts"],
        "bytes_before": sum(before.values()),
        "bytes_after": sum(after.values()),
        "files_after": after,
    }
    print(json.dumps(report, indent=2, sort_keys=True))
    return 0


def add_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``agl sqlite`` and its subcommands."""
    p = subparsers.add_parser("sqlite", help="maintain a SQLite store file")

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(handler=usage)
    group = p.add_subparsers(dest="sqlite_command", metavar="SUBCOMMAND")
    v = group.add_parser("vacuum", help="delete old finished rollouts (optional) and compact the file")
    v.add_argument("--path", required=True, help="the store's database file")
    v.add_argument(
        "--older-than",
        type=float,
        metavar="SECONDS",
        help="first delete finished rollouts (with attempts and spans) that ended more than SECONDS ago",
    )
    v.set_defaults(handler=_vacuum)
