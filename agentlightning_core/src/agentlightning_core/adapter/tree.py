"""``TraceTree``: the spans of a trace as a tree, with text and SVG renderings.

Building the tree repairs what tracing across libraries and threads breaks: a span whose
parent was not recorded hangs under a *virtual* node standing for that parent, several
roots hang under one virtual root, and (``repair_hierarchy=True``) a child of a virtual
or root node whose time range lies inside a sibling's moves under that sibling.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from agentlightning_core import semconv
from agentlightning_core.spans import Span

__all__ = ["TraceNode", "TraceTree"]

_KEY_ATTRIBUTES = (
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_USAGE_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.REWARD_VALUE,
    *semconv.AGENT_NAME_KEYS,
    semconv.MESSAGE_BODY,
    semconv.EXCEPTION_TYPE,
)


class TraceNode:
    """A span (or a virtual stand-in for a missing one) and its children in start order."""

    __slots__ = ("children", "end_time", "name", "parent", "span", "span_id", "start_time")

    def __init__(self, span: Span | None, span_id: str, name: str) -> None:
        self.span = span
        self.span_id = span_id
        self.name = name
        self.start_time: float | None = span.start_time if span else None
        self.end_time: float | None = span.end_time if span else None
        self.parent: TraceNode | None = None
        self.children: list[TraceNode] = []

    @property
    def virtual(self) -> bool:
        return self.span is None

    @property
    def attributes(self) -> dict[str, Any]:
        return self.span.attributes if self.span is not None else {}

    def walk(self) -> Iterator[TraceNode]:
        """This node and its descendants, depth first in start order."""
        stack = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def ancestors(self) -> Iterator[TraceNode]:
        node = self.parent
        while node is not None:
            yield node
            node = node.parent

    def __repr__(self) -> str:
        return f"TraceNode({self.name!r}, {len(self.children)} children{', virtual' if self.virtual else ''})"


def _start_key(node: TraceNode) -> tuple[float, int]:
    seq = node.span.sequence_id if node.span is not None else -1
    return (node.start_time if node.start_time is not None else float("inf"), seq)


class TraceTree:
    """A tree of spans with a single root (virtual when the trace has several roots)."""

    def __init__(self, root: TraceNode, nodes: dict[str, TraceNode]) -> None:
        self.root = root
        self.nodes = nodes

    @classmethod
    def from_spans(cls, spans: Sequence[Span], *, repair_hierarchy: bool = True) -> TraceTree:
        nodes: dict[str, TraceNode] = {}
        for span in spans:
            nodes.setdefault(span.span_id, TraceNode(span, span.span_id, span.name))
        roots: list[TraceNode] = []
        for node in list(nodes.values()):
            parent_id = node.span.parent_id if node.span is not None else None
            if parent_id is None or parent_id == node.span_id:
                roots.append(node)
                continue
            parent = nodes.get(parent_id)
            if parent is None:
                parent = nodes[parent_id] = TraceNode(None, parent_id, "<missing parent>")
                roots.append(parent)
            node.parent = parent
            parent.children.append(node)
        if len(roots) == 1:
            root = roots[0]
        else:
            root = TraceNode(None, "<root>", "<trace>")
            for r in roots:
                r.parent = root
            root.children = roots
        tree = cls(root, nodes)
        tree._finish(repair_hierarchy)
        return tree

    def _finish(self, repair: bool) -> None:
        # Post-order: virtual nodes take the time range of their children.
        order = list(self.root.walk())
        for node in reversed(order):
            node.children.sort(key=_start_key)
            if node.virtual and node.children:
                starts = [c.start_time for c in node.children if c.start_time is not None]
                ends = [c.end_time for c in node.children if c.end_time is not None]
                node.start_time = min(starts) if starts else None
                node.end_time = max(ends) if ends else None
        if repair:
            for node in order:
                if node.virtual or node.parent is None:
                    self._repair_children(node)

    @staticmethod
    def _repair_children(parent: TraceNode) -> None:
        """Move each child whose time range lies inside a sibling's under the tightest such sibling."""
        open_stack: list[TraceNode] = []
        moved: list[tuple[TraceNode, TraceNode]] = []
        for child in parent.children:  # sorted by start
            if child.start_time is None or child.end_time is None:
                continue
            while (
                open_stack
                and open_stack[-1].end_time is not None
                and open_stack[-1].end_time < child.end_time
            ):
                open_stack.pop()
            if open_stack:
                container = open_stack[-1]
                if (container.start_time, container.end_time) != (child.start_time, child.end_time):
                    moved.append((child, container))
            open_stack.append(child)
        if not moved:
            return
        gone = {id(c) for c, _ in moved}
        parent.children = [c for c in parent.children if id(c) not in gone]
        for child, container in moved:
            child.parent = container
            container.children.append(child)
        for _, container in moved:
            container.children.sort(key=_start_key)

    # --- queries -------------------------------------------------------------------------

    def walk(self) -> Iterator[TraceNode]:
        return self.root.walk()

    def find(self, predicate: Callable[[TraceNode], bool]) -> list[TraceNode]:
        return [n for n in self.walk() if predicate(n)]

    def spans(self) -> list[Span]:
        return [n.span for n in self.walk() if n.span is not None]

    # --- rendering -----------------------------------------------------------------------

    def to_text(self, *, max_value_chars: int = 60) -> str:
        """An indented tree: name, start offset and duration in ms, key attributes."""
        t0 = self.root.start_time
        lines: list[str] = []

        def visit(node: TraceNode, depth: int) -> None:
            lines.append("  " * depth + _describe(node, t0, max_value_chars))
            for child in node.children:
                visit(child, depth + 1)

        visit(self.root, 0)
        return "\n".join(lines)

    def to_svg(self, *, width: int = 960, row_height: int = 20) -> str:
        """A timeline (one bar per span, indented by depth) as a standalone SVG document."""
        rows: list[tuple[TraceNode, int]] = []

        def visit(node: TraceNode, depth: int) -> None:
            rows.append((node, depth))
            for child in node.children:
                visit(child, depth + 1)

        visit(self.root, 0)
        t0 = self.root.start_time or 0.0
        t1 = self.root.end_time or t0
        for node, _ in rows:
            if node.end_time is not None:
                t1 = max(t1, node.end_time)
        span_s = max(t1 - t0, 1e-9)
        label_w = 320
        bar_w = width - label_w - 10
        height = row_height * len(rows) + 10
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'font-family="monospace" font-size="{row_height * 0.6:.0f}">',
            f'<rect width="{width}" height="{height}" fill="white"/>',
        ]
        for i, (node, depth) in enumerate(rows):
            y = 5 + i * row_height
            label = html.escape(("  " * depth + node.name)[:48])
            out.append(f'<text x="4" y="{y + row_height * 0.7:.1f}" xml:space="preserve">{label}</text>')
            if node.start_time is None:
                continue
            end = node.end_time if node.end_time is not None else node.start_time
            x = label_w + (node.start_time - t0) / span_s * bar_w
            w = max((end - node.start_time) / span_s * bar_w, 1.0)
            out.append(
                f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_height - 4}" '
                f'fill="{_colour(node)}"><title>{html.escape(_describe(node, t0, 200))}</title></rect>'
            )
        out.append("</svg>")
        return "\n".join(out)


def _colour(node: TraceNode) -> str:
    if node.virtual:
        return "#cccccc"
    attrs = node.attributes
    if node.span is not None and node.span.status.status_code == "ERROR":
        return "#d9534f"
    if semconv.GEN_AI_OPERATION_NAME in attrs:
        return "#4a90d9"
    if semconv.REWARD_VALUE in attrs:
        return "#5cb85c"
    return "#f0ad4e"


def _short(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else repr(value)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(node: TraceNode, t0: float | None, limit: int) -> str:
    parts = [node.name + (" (virtual)" if node.virtual else "")]
    if node.start_time is not None and t0 is not None:
        parts.append(f"+{(node.start_time - t0) * 1e3:.1f}ms")
    if node.start_time is not None and node.end_time is not None:
        parts.append(f"{(node.end_time - node.start_time) * 1e3:.1f}ms")
    attrs = node.attributes
    kv = [f"{k.rsplit('.', 1)[-1]}={_short(attrs[k], limit)}" for k in _KEY_ATTRIBUTES if k in attrs]
    if semconv.EXCEPTION_MESSAGE in attrs:
        kv.append(f"message={_short(attrs[semconv.EXCEPTION_MESSAGE], max(limit, 200))}")
    if node.span is not None and node.span.status.status_code == "ERROR":
        kv.append(f"ERROR={_short(node.span.status.description or '', limit)}")
    if kv:
        parts.append("[" + ", ".join(kv) + "]")
    return " ".join(parts)
