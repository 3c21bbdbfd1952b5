"""The ``agl`` command line. Each core subcommand lives in a module of this package that defines
``add_parser(subparsers)``; plugins add theirs through the ``register_commands`` hook. A
parser's ``handler`` default runs the command and returns an exit code."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

__all__ = ["PluginCommandError", "build_parser", "main"]

_COMMAND_MODULES = ("dashboard", "plugins", "rollouts", "store", "traces", "train")


def _version_text() -> str:
    from agentlightning_core import __version__
    from agentlightning_core.plugins import plugin_infos

    lines = [f"agl (agentlightning-core) {__version__}"]
    dists = sorted({(p.distribution, p.version) for p in plugin_infos().values() if not p.builtin})
    lines += [f"  plugin {name} {version}" for name, version in dists]
    return "\n".join(lines)


class _VersionAction(argparse.Action):
    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and installed plugins")

    def __call__(self, parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        print(_version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agl", description="Agent Lightning command line.")
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(f"agentlightning_core.cli.{name}").add_parser(sub)
    _add_plugin_commands(sub)
    return parser


def _add_plugin_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Let each plugin add its subcommands; a name clash is an error naming the plugin."""
    from agentlightning_core.plugins import get_plugin_manager, plugin_infos

    infos = plugin_infos()
    for impl in get_plugin_manager().hook.register_commands.get_hookimpls():
        try:
            impl.function(subparsers=sub)
        except argparse.ArgumentError as exc:
            info = infos.get(impl.plugin_name)
            origin = f" (distribution {info.distribution})" if info is not None else ""
            raise PluginCommandError(
                f"Plugin {impl.plugin_name!r}{origin} could not add its agl command: {exc}. "
                f"Disable one of the clashing plugins with AGL_DISABLE_PLUGINS={impl.plugin_name}"
            ) from exc


class PluginCommandError(RuntimeError):
    """A plugin's ``register_commands`` clashed with an existing ``agl`` command."""


def main(argv: Sequence[str] | None = None) -> int:
    try:
        parser = build_parser()
    except Exception as exc:  # a broken plugin: one line, not a traceback
        print(f"agl: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args))
    except Exception as exc:  # the CLI reports errors as one line, not a traceback
        if args.verbose:
            raise
        print(f"agl: error: {exc}", file=sys.stderr)
        return 1
