"""Plugins own their ``agl`` commands (``register_commands``); the core's CLI names no plugin."""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Any

import pytest

from agentlightning_core import hookimpl, plugins
from agentlightning_core.cli import build_parser, main

CLI_DIR = Path(plugins.__file__).with_name("cli")


class GreetPlugin:
    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        p = subparsers.add_parser("greet", help="say hello")
        p.add_argument("name")
        p.set_defaults(handler=lambda args: print(f"hello {args.name}") or 7)


class ClashPlugin:
    @hookimpl
    def register_commands(self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
        subparsers.add_parser("store", help="a second 'agl store'")


def test_a_plugin_adds_a_command(agl_register_plugin: Any, capsys: pytest.CaptureFixture[str]) -> None:
    agl_register_plugin(GreetPlugin(), "greeter")
    assert "greet" in build_parser().format_help()
    assert main(["greet", "world"]) == 7
    assert capsys.readouterr().out == "hello world\n"


def test_without_the_plugin_the_command_is_gone(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["greet", "world"])
    assert "invalid choice: 'greet'" in capsys.readouterr().err


def test_a_command_clash_names_the_plugin(
    agl_register_plugin: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    agl_register_plugin(ClashPlugin(), "clasher")
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("agl: error: Plugin 'clasher'") and "conflicting subparser: store" in err
    assert "AGL_DISABLE_PLUGINS=clasher" in err


def test_core_cli_names_no_plugin() -> None:
    first_party = {name for names in plugins.FIRST_PARTY.values() for name in names}
    first_party |= {"local", "proxy", "ray", "postgres"}
    for source in CLI_DIR.glob("*.py"):
        words = set(re.findall(r"[a-z_]+", source.read_text().lower()))
        assert not words & first_party, f"{source.name} names plugin(s) {words & first_party}"


def test_store_options_have_no_default_store() -> None:
    parser = argparse.ArgumentParser()
    from agentlightning_core.cli.store import add_store_options

    add_store_options(parser)
    with pytest.raises(SystemExit):
        parser.parse_args([])  # --store is required unless a command gives a core default


def test_unknown_agl_plugins_name_is_reported(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    plugins.reset_plugins()
    monkeypatch.setenv("AGL_PLUGINS", "sqlite,sqlit")
    try:
        with caplog.at_level(logging.WARNING, logger="agentlightning_core.plugins"):
            plugins.get_plugin_manager()
    finally:
        plugins.reset_plugins()
    (record,) = [r for r in caplog.records if "AGL_PLUGINS" in r.getMessage()]
    message = record.getMessage()
    assert "'sqlit', which is no installed plugin" in message
    assert "agentlightning-sqlite" in message and "sqlite" in message  # the names that would work


def test_hook_is_documented_with_its_signature() -> None:
    docs = (Path(plugins.__file__).parents[3] / "docs" / "plugins.md").read_text()
    assert "register_commands(subparsers)" in docs
