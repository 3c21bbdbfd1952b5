"""``agl plugins`` and ``agl components``."""

from __future__ import annotations

import argparse
import json
import re
from importlib import metadata
from typing import Any

from agentlightning_core.plugins import KINDS, get_registry, kind_of, plugin_infos

__all__ = ["add_parser", "plugins_report"]


def _requires(distribution: str) -> dict[str, str | None]:
    """The installed version of each (non-extra) dependency of ``distribution``; None when missing."""
    try:
        requirements = metadata.requires(distribution) or []
    except metadata.PackageNotFoundError:
        return {}
    out: dict[str, str | None] = {}
    for requirement in requirements:
        if "extra ==" in requirement.replace("extra==", "extra =="):
            continue
        name = re.split(r"[\s\[<>=!~;(]", requirement, maxsplit=1)[0]
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return dict(sorted(out.items()))


def plugins_report(include_builtin: bool) -> list[dict[str, Any]]:
    """One entry per distribution: name, version, plugins, components by kind and the installed
    versions of its dependencies (``requires``), all sorted."""
    by_dist: dict[str, dict[str, Any]] = {}
    for info in plugin_infos().values():
        if info.builtin and not include_builtin:
            continue
        entry = by_dist.setdefault(
            info.distribution,
            {"distribution": info.distribution, "version": info.version, "plugins": [], "components": {}},
        )
        entry["plugins"].append(info.name)
    for kind, regs in get_registry().items():
        for name, reg in regs.items():
            owner = by_dist.get(reg.plugin.distribution)
            if owner is not None and reg.plugin.name in owner["plugins"]:
                owner["components"].setdefault(KINDS[kind].plural, []).append(name)
    for entry in by_dist.values():
        entry["plugins"].sort()
        entry["components"] = {k: sorted(v) for k, v in sorted(entry["components"].items())}
        entry["requires"] = _requires(entry["distribution"])
    return [by_dist[k] for k in sorted(by_dist)]


def _plugins(args: argparse.Namespace) -> int:
    print(json.dumps(plugins_report(args.all), indent=2))
    return 0


def _components(args: argparse.Namespace) -> int:
    registry = get_registry()
    kinds = [kind_of(args.kind).name] if args.kind else list(KINDS)
    for kind in kinds:
        for name in sorted(registry[kind]):
            reg = registry[kind][name]
            line = f"{name}\t{reg.plugin.distribution}"
            print(line if args.kind else f"{KINDS[kind].plural}\t{line}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("plugins", help="list installed plugin distributions as JSON")
    p.add_argument("--all", action="store_true", help="include the core's built-in components")
    p.set_defaults(handler=_plugins)
    c = sub.add_parser("components", help="list registered components, optionally of one kind")
    c.add_argument("kind", nargs="?", help=f"one of: {', '.join(k.plural for k in KINDS.values())}")
    c.set_defaults(handler=_components)
