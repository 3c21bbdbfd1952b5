"""docs/migrating.md cannot drift from the code: every core name it gives exists.

Checked: each ``from agentlightning_core import X`` (in code blocks and in the text) names a
member of ``agentlightning_core.__all__``; each backticked bare name in a table column titled
``now`` is such a member too (the page's convention); each dotted reference into a
distribution of this repository (``agentlightning_core.tracer.base.active_tracer``,
``agentlightning_sqlite.SqliteLightningStore``) imports; and every Python block parses.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

import agentlightning_core

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "migrating.md"
TEXT = GUIDE.read_text(encoding="utf-8")

CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
INLINE_IMPORT = re.compile(r"from agentlightning_core import ([A-Za-z_][\w, ]*)")
BACKTICKED = re.compile(r"`([^`]+)`")
BARE_NAME = re.compile(r"[A-Za-z_]\w*")
DOTTED = re.compile(r"\b(agentlightning_\w+(?:\.\w+)+)")


def _repository_packages() -> set[str]:
    """Import names of the distributions this repository holds (``src/<name>/__init__.py``)."""
    inits = [*ROOT.glob("agentlightning_*/src/*/__init__.py"), *ROOT.glob("plugins/*/src/*/__init__.py")]
    return {p.parent.name for p in inits}


def _python_blocks() -> list[str]:
    return CODE_BLOCK.findall(TEXT)


def _imported_root_names() -> set[str]:
    names: set[str] = set()
    for block in _python_blocks():
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom) and node.module == "agentlightning_core":
                names.update(alias.name for alias in node.names)
    for match in INLINE_IMPORT.finditer(TEXT):
        names.update(n.strip() for n in match.group(1).split(",") if n.strip())
    return names


def _split_row(line: str) -> list[str]:
    # Cells are separated by "|" except an escaped "\|" inside a cell.
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def _now_column_names() -> set[str]:
    """Backticked bare names in every table column titled exactly ``now``."""
    names: set[str] = set()
    column: int | None = None
    for line in TEXT.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = _split_row(line)
        if column is None:
            column = cells.index("now") if "now" in cells else -1
            continue
        if column < 0 or column >= len(cells) or set(cells[0]) <= {"-", " ", ":"}:
            continue
        names.update(t for t in BACKTICKED.findall(cells[column]) if BARE_NAME.fullmatch(t))
    return names


def _resolves(path: str) -> bool:
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_the_guide_uses_the_page_conventions() -> None:
    """The checks below have something to check (a renamed header would silence them)."""
    assert len(_python_blocks()) >= 2
    assert {"Trainer", "rollout", "PromptTemplate"} <= _imported_root_names()
    assert {"Trainer", "LightningStore", "InMemoryLightningStore", "OtelTracer"} <= _now_column_names()


def test_python_blocks_parse() -> None:
    for block in _python_blocks():
        ast.parse(block)


@pytest.mark.parametrize("name", sorted(_imported_root_names() | _now_column_names()))
def test_root_name_exists(name: str) -> None:
    assert name in agentlightning_core.__all__, (
        f"docs/migrating.md gives {name!r} as a name of agentlightning_core, which does not export it"
    )
    assert hasattr(agentlightning_core, name)


def test_dotted_references_resolve() -> None:
    packages = _repository_packages()
    refs = sorted({m for m in DOTTED.findall(TEXT) if m.split(".")[0] in packages})
    assert any(r.startswith("agentlightning_core.") for r in refs)
    missing = [r for r in refs if not _resolves(r)]
    assert not missing, f"docs/migrating.md refers to paths that do not exist: {missing}"
