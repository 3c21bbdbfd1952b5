"""The plugins of this repository import only the core's public API.

Public: the names of ``agentlightning_core.__all__`` and the ``__all__`` names of the stable
submodules docs/plugins.md lists under "What to import" (an entry ``pkg.*`` is the package and
its submodules). Internal: every ``_``-prefixed module and every other submodule. The source
of each plugin distribution (``plugins/*``, ``agentlightning_*`` other than the core, the
example plugin) is walked with :mod:`ast`: imports and lazy ``"module:Name"`` registrations.
"""

from __future__ import annotations

import ast
import importlib
import re
from collections.abc import Iterator
from pathlib import Path

CORE = "agentlightning_core"
ROOT = Path(__file__).resolve().parents[1]
CORE_SRC = ROOT / CORE / "src" / CORE
DOCS = ROOT / "docs" / "plugins.md"
LAZY_PATH = re.compile(rf"({CORE}(?:\.\w+)*):(\w+)")


def stable_modules() -> list[str]:
    """The stable submodules docs/plugins.md lists (section "What to import")."""
    section = DOCS.read_text(encoding="utf-8").split("### What to import\n", 1)[1].split("\n#", 1)[0]
    return re.findall(rf"^- `({CORE}(?:\.\w+)+(?:\.\*)?)`", section, re.MULTILINE)


def plugin_sources() -> list[Path]:
    """The ``src`` folder of every plugin distribution of this repository."""
    dists = [
        *ROOT.glob("plugins/*"),
        *ROOT.glob("agentlightning_*"),
        ROOT / "examples" / "third_party_plugin",
    ]
    return sorted(d / "src" for d in dists if d.name != CORE and (d / "src").is_dir())


def is_module(dotted: str) -> bool:
    """Whether ``dotted`` names a module or package of the core (looked up on disk, not imported)."""
    path = CORE_SRC.joinpath(*dotted.split(".")[1:])
    return dotted == CORE or path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def core_references(tree: ast.AST) -> Iterator[tuple[int, str, str | None]]:
    """``(line, module, name)`` of each use of the core; ``name`` is None for a whole module."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == CORE:
                    yield node.lineno, alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] != CORE:
                continue
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if is_module(submodule):
                    yield node.lineno, submodule, None
                else:
                    yield node.lineno, node.module, alias.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lazy = LAZY_PATH.fullmatch(node.value)  # register("name", "agentlightning_core.x:Class")
            if lazy:
                yield node.lineno, lazy[1], lazy[2]


def is_stable(module: str, stable: list[str]) -> bool:
    return module == CORE or any(
        module == entry or (entry.endswith(".*") and (module == entry[:-2] or module.startswith(entry[:-1])))
        for entry in stable
    )


def violations(path: Path, stable: list[str]) -> list[str]:
    """Each import of ``path`` that reaches past the core's public API, with what to do instead."""
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for line, module, name in sorted(core_references(tree), key=lambda ref: ref[0]):
        where = f"{path.name}:{line}"
        if any(part.startswith("_") for part in module.split(".")):
            found.append(f"{where}: {module} is internal (a `_` module); use the public API")
        elif not is_stable(module, stable):
            found.append(
                f"{where}: {module} is not a stable submodule (docs/plugins.md, 'What to import');"
                " import its public names from agentlightning_core"
            )
        elif name is not None and name not in importlib.import_module(module).__all__:
            found.append(f"{where}: {name} is not a public name of {module} (not in its __all__)")
    return found


def test_documented_stable_modules_exist_and_are_public() -> None:
    stable = stable_modules()
    assert {"agentlightning_core.store.base", "agentlightning_core.testing.*"} <= set(stable)
    for entry in stable:
        module = entry.removesuffix(".*")
        assert is_module(module), f"docs/plugins.md lists {entry}, which is not a module of the core"
        assert not any(part.startswith("_") for part in module.split(".")), entry
        assert hasattr(importlib.import_module(module), "__all__"), f"{module} has no __all__"


def test_plugins_import_only_public_names() -> None:
    sources = plugin_sources()
    names = {src.parent.name for src in sources}
    assert {
        "agentlightning_sqlite",
        "agentlightning_baseline",
        "agentlightning_local",
        "third_party_plugin",
    } <= names
    stable = stable_modules()
    found = [v for src in sources for path in sorted(src.rglob("*.py")) for v in violations(path, stable)]
    assert found == []


DRIFT = """
import agentlightning_core._records
from agentlightning_core import _LAZY
from agentlightning_core.remote._protocol import OPERATIONS
from agentlightning_core.store.copying import copier
from agentlightning_core.store import memory
from agentlightning_core.types import _MODE_VALUES
LAZY = "agentlightning_core.runner.agent:LitAgentRunner"
"""


def test_a_drifted_plugin_module_is_refused(tmp_path: Path) -> None:
    stable = stable_modules()
    original = ROOT / "plugins" / "agentlightning_sqlite" / "src" / "agentlightning_sqlite" / "spans.py"
    copy = tmp_path / "spans.py"
    copy.write_text(original.read_text(encoding="utf-8"), encoding="utf-8")
    assert violations(copy, stable) == []  # the real module keeps to the public API

    start = len(original.read_text(encoding="utf-8").splitlines())
    copy.write_text(original.read_text(encoding="utf-8") + DRIFT, encoding="utf-8")
    found = violations(copy, stable)
    assert [int(v.split(":")[1]) - start for v in found] == [2, 3, 4, 5, 6, 7, 8]
    assert "agentlightning_core._records is internal" in found[0]
    assert "_LAZY is not a public name of agentlightning_core" in found[1]
    assert "agentlightning_core.remote._protocol is internal" in found[2]
    assert "agentlightning_core.store.copying is not a stable submodule" in found[3]
    assert "agentlightning_core.store.memory is not a stable submodule" in found[4]
    assert "_MODE_VALUES is not a public name of agentlightning_core.types" in found[5]
    assert "agentlightning_core.runner.agent is not a stable submodule" in found[6]


def test_a_submodule_dropped_from_the_docs_is_refused() -> None:
    stable = [entry for entry in stable_modules() if entry != "agentlightning_core.store.policy"]
    plugin = ROOT / "plugins" / "agentlightning_sqlite" / "src" / "agentlightning_sqlite"
    found = violations(plugin / "rollouts.py", stable)
    assert found and all("agentlightning_core.store.policy is not a stable submodule" in v for v in found)
