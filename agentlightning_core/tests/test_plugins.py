"""Plugin loading, registration and component resolution, with real entry points."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from agentlightning_core import (
    DuplicateComponentError,
    LightningStore,
    PluginLoadError,
    UnknownComponentError,
    hookimpl,
    plugins,
)
from agentlightning_core.adapter.base import Adapter


class Upper(Adapter[str, str]):
    def __init__(self, suffix: str = "") -> None:
        self.suffix = suffix

    def adapt(self, source: str) -> str:
        return source.upper() + self.suffix


class NotAnAdapter:
    pass


class UpperPlugin:
    @hookimpl
    def register_adapters(self, register: Any) -> None:
        register("upper", Upper)
        register("lazy-upper", f"{__name__}:Upper")


@pytest.fixture
def fresh_plugins() -> Iterator[None]:
    plugins.reset_plugins()
    yield
    plugins.reset_plugins()


@pytest.fixture
def site_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_plugins: None) -> Path:
    """A directory on sys.path where tests install fake distributions (real dist-info + entry points)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def install_fake_distribution(site: Path, dist: str, module: str, source: str) -> None:
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[agentlightning]\n{module} = {module}\n")
    sys.modules.pop(module, None)


def test_builtins_are_registered_through_hooks() -> None:
    assert "memory" in plugins.component_names("store")
    assert plugins.component_names("stores") == plugins.component_names("store")
    infos = plugins.plugin_infos()
    assert infos["agentlightning_core.builtins"].builtin


def test_resolve_every_spec_form(agl_register_plugin: Any) -> None:
    agl_register_plugin(UpperPlugin(), "upper-plugin")
    instance = Upper()
    assert plugins.resolve_component("adapter", instance) is instance
    assert plugins.resolve_component("adapter", Upper, suffix="!")("a") == "A!"
    assert plugins.resolve_component("adapter", lambda: Upper("?"))("a") == "A?"
    assert plugins.resolve_component("adapter", "upper")("b") == "B"
    assert plugins.resolve_component("adapter", "lazy-upper")("c") == "C"
    assert plugins.resolve_component("adapter", {"type": "upper", "suffix": "."})("d") == "D."
    assert plugins.resolve_component("adapter", f"{__name__}:Upper")("e") == "E"
    # a dict's own arguments override the defaults given by the caller
    assert plugins.resolve_component("adapter", {"type": "upper", "suffix": "1"}, suffix="2")("f") == "F1"


def test_plugin_registered_for_one_test_is_gone_after(agl_register_plugin: Any) -> None:
    assert "upper" not in plugins.component_names("adapter")
    agl_register_plugin(UpperPlugin(), "upper-plugin")
    assert "upper" in plugins.component_names("adapter")


def test_unknown_name_lists_available_components() -> None:
    with pytest.raises(
        UnknownComponentError, match=r"Unknown store 'redis'\. Available stores: .*memory"
    ) as info:
        plugins.resolve_component("store", "redis")
    assert "pip install" not in str(info.value)
    assert isinstance(info.value, LookupError)


def test_first_party_name_suggests_its_distribution(
    monkeypatch: pytest.MonkeyPatch, fresh_plugins: None
) -> None:
    monkeypatch.setenv("AGL_PLUGINS", "")  # as if no plugin distribution were installed
    with pytest.raises(UnknownComponentError) as info:
        plugins.resolve_component("store", "sqlite")
    message = str(info.value)
    assert "Available stores: " in message and "memory" in message
    assert "pip install './plugins/agentlightning_sqlite'" in message
    with pytest.raises(UnknownComponentError, match=r"pip install '\./plugins/agentlightning_baseline'"):
        plugins.resolve_component("algorithm", "baseline")


def test_type_check_against_the_kind_base_class() -> None:
    with pytest.raises(TypeError, match="is not a store: it does not subclass LightningStore"):
        plugins.resolve_component("store", NotAnAdapter)
    with pytest.raises(TypeError, match="returned NotAnAdapter, which is not a LightningStore"):
        plugins.resolve_component("store", lambda: NotAnAdapter())
    with pytest.raises(TypeError, match="Cannot make a store from 42"):
        plugins.resolve_component("store", 42)
    with pytest.raises(TypeError, match="needs a 'type' key"):
        plugins.resolve_component("store", {"path": "x"})
    with pytest.raises(ValueError, match="Unknown component kind 'database'"):
        plugins.resolve_component("database", "memory")
    with pytest.raises(UnknownComponentError, match=r"Cannot import store 'nowhere\.at\.all:Store'"):
        plugins.resolve_component("store", "nowhere.at.all:Store")


def test_bad_constructor_arguments_name_the_spec(agl_register_plugin: Any) -> None:
    agl_register_plugin(UpperPlugin(), "upper-plugin")
    with pytest.raises(TypeError, match=r"Cannot create adapter from 'upper' with arguments \['colour'\]"):
        plugins.resolve_component("adapter", "upper", colour="red")


def test_duplicate_name_names_both_plugins(agl_register_plugin: Any) -> None:
    class Again:
        @hookimpl
        def register_adapters(self, register: Any) -> None:
            register("upper", Upper)

    agl_register_plugin(UpperPlugin(), "first-plugin")
    agl_register_plugin(Again(), "second-plugin")
    with pytest.raises(DuplicateComponentError, match=r"'first-plugin'.*'second-plugin'"):
        plugins.get_registry()


def test_misspelt_hookimpl_fails_at_registration() -> None:
    class Misspelt:
        @hookimpl
        def register_storez(self, register: Any) -> None:
            register("x", Upper)

    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError, match="register_storez"), plugins.registered_plugin(Misspelt()):
        pass


def test_entry_point_plugin_is_loaded_with_its_distribution(site_dir: Path) -> None:
    install_fake_distribution(
        site_dir,
        "agl-fake-dist",
        "agl_fake_plugin",
        """
        from agentlightning_core import hookimpl

        @hookimpl
        def register_stores(register):
            register("fake", "agentlightning_core.store.base:LightningStore")
        """,
    )
    assert "fake" in plugins.component_names("store")
    info = plugins.plugin_infos()["agl_fake_plugin"]
    assert (info.distribution, info.version, info.builtin) == ("agl-fake-dist", "1.2.3", False)
    reg = plugins.get_registry()["store"]["fake"]
    assert reg.load() is LightningStore


def test_entry_point_with_misspelt_hook_fails_at_start_up(site_dir: Path) -> None:
    install_fake_distribution(
        site_dir,
        "agl-typo-dist",
        "agl_typo_plugin",
        """
        from agentlightning_core import hookimpl

        @hookimpl
        def register_algoritms(register):
            pass
        """,
    )
    from pluggy import PluginValidationError

    with pytest.raises(PluginValidationError, match="register_algoritms"):
        plugins.get_plugin_manager()


def test_plugin_import_failure_names_entry_point_and_distribution(site_dir: Path) -> None:
    install_fake_distribution(
        site_dir, "agl-broken-dist", "agl_broken_plugin", "raise RuntimeError('kaput')\n"
    )
    with pytest.raises(PluginLoadError) as info:
        plugins.get_plugin_manager()
    message = str(info.value)
    assert "'agl_broken_plugin'" in message and "agl-broken-dist 1.2.3" in message
    assert "RuntimeError: kaput" in message and "AGL_DISABLE_PLUGINS=agl_broken_plugin" in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_disable_and_only_environment_variables(site_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    install_fake_distribution(
        site_dir, "agl-broken-dist", "agl_broken_plugin", "raise RuntimeError('kaput')\n"
    )
    monkeypatch.setenv("AGL_DISABLE_PLUGINS", "agl-broken-dist")
    assert "memory" in plugins.component_names("store")
    plugins.reset_plugins()
    monkeypatch.delenv("AGL_DISABLE_PLUGINS")
    monkeypatch.setenv("AGL_PLUGINS", "something-else")
    assert "agl_broken_plugin" not in plugins.plugin_infos()


def test_plugin_manager_is_built_lazily(fresh_plugins: None) -> None:
    import subprocess

    code = "import agentlightning_core.plugins as p, sys; print(p._pm, 'opentelemetry' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["None", "False"]


def test_registry_records_plugin_of_each_component(agl_register_plugin: Any) -> None:
    name = agl_register_plugin(
        SimpleNamespace(register_adapters=UpperPlugin().register_adapters), "ns-plugin"
    )
    reg = plugins.get_registry()["adapter"]["upper"]
    assert reg.plugin.name == name
