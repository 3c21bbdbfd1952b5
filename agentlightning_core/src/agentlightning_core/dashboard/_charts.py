"""Inline SVG charts, drawn on the server (no JavaScript charting library)."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence

from agentlightning_core.dashboard._index import RewardPoint

__all__ = ["bar_chart", "line_chart"]

_COLOURS = ("#2f6fdb", "#e07b00", "#2a9d4b", "#c0392b", "#8e44ad", "#16a085")
_W, _H, _PAD_L, _PAD_R, _PAD_T, _PAD_B = 720, 300, 56, 120, 16, 40


def _y_range(values: Sequence[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    if hi - lo < 1e-9:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def _frame(title: str, y_lo: float, y_hi: float, points: int, body: list[str], legend: list[str]) -> str:
    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" '
        f'width="{_W}" height="{_H}" role="img" aria-label="{html.escape(title)}" data-points="{points}">',
        f'<rect x="0" y="0" width="{_W}" height="{_H}" fill="#ffffff"/>',
    ]
    for i in range(5):
        value = y_lo + (y_hi - y_lo) * i / 4
        y = _PAD_T + (_H - _PAD_T - _PAD_B) * (1 - i / 4)
        out.append(f'<line x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e3e3"/>')
        out.append(
            f'<text x="{_PAD_L - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value:.3g}</text>'
        )
    out.extend(body)
    for i, label in enumerate(legend):
        y = _PAD_T + 14 + i * 18
        colour = _COLOURS[i % len(_COLOURS)]
        out.append(f'<rect x="{_W - _PAD_R + 12}" y="{y - 9}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{_W - _PAD_R + 30}" y="{y + 1}" font-size="12">{html.escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)


def _x(i: int, n: int) -> float:
    inner = _W - _PAD_L - _PAD_R
    return _PAD_L + (inner / 2 if n <= 1 else inner * i / (n - 1))


def _y(value: float, lo: float, hi: float) -> float:
    return _PAD_T + (_H - _PAD_T - _PAD_B) * (1 - (value - lo) / (hi - lo))


def line_chart(series: Mapping[str, Sequence[RewardPoint]], *, x_label: str = "step") -> str:
    """Mean reward per step, one line (with min-max band) per series; empty string without data."""
    steps = sorted({p.key for points in series.values() for p in points if p.mean is not None})
    values = [
        v for points in series.values() for p in points for v in (p.minimum, p.maximum) if v is not None
    ]
    if not steps or not values:
        return ""
    lo, hi = _y_range(values)
    pos = {step: i for i, step in enumerate(steps)}
    body: list[str] = []
    for i, step in enumerate(steps):
        x = _x(i, len(steps))
        body.append(
            f'<text x="{x:.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle" font-size="11">{step}</text>'
        )
    body.append(
        f'<text x="{(_PAD_L + _W - _PAD_R) / 2:.0f}" y="{_H - 6}" text-anchor="middle" font-size="12">'
        f"{html.escape(x_label)}</text>"
    )
    legend: list[str] = []
    count = 0
    for n, (name, points) in enumerate(series.items()):
        colour = _COLOURS[n % len(_COLOURS)]
        pts = [p for p in points if p.mean is not None]
        if not pts:
            continue
        legend.append(name)
        count += len(pts)
        xs = [_x(pos[p.key], len(steps)) for p in pts]
        band = [
            f"{x:.1f},{_y(p.maximum, lo, hi):.1f}"
            for x, p in zip(xs, pts, strict=True)
            if p.maximum is not None
        ]
        band += [
            f"{x:.1f},{_y(p.minimum, lo, hi):.1f}"
            for x, p in reversed(list(zip(xs, pts, strict=True)))
            if p.minimum is not None
        ]
        body.append(f'<polygon points="{" ".join(band)}" fill="{colour}" fill-opacity="0.15" stroke="none"/>')
        line = " ".join(
            f"{x:.1f},{_y(p.mean, lo, hi):.1f}" for x, p in zip(xs, pts, strict=True) if p.mean is not None
        )
        body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2.5"/>')
        for x, p in zip(xs, pts, strict=True):
            assert p.mean is not None
            body.append(
                f'<circle class="point" cx="{x:.1f}" cy="{_y(p.mean, lo, hi):.1f}" r="4" fill="{colour}">'
                f"<title>{html.escape(name)} {x_label} {p.key}: mean {p.mean:.4g} over {p.rewarded} "
                f"rewarded of {p.count}</title></circle>"
            )
    return _frame("mean reward per " + x_label, lo, hi, count, body, legend)


def bar_chart(points: Sequence[RewardPoint], labels: Sequence[str]) -> str:
    """Mean reward per group (resources version), one bar each; empty string without data."""
    pairs = [(p, label) for p, label in zip(points, labels, strict=True) if p.mean is not None]
    if not pairs:
        return ""
    lo, hi = _y_range([0.0, *(p.mean for p, _ in pairs if p.mean is not None)])
    inner = _W - _PAD_L - _PAD_R
    width = inner / len(pairs)
    body: list[str] = []
    zero = _y(max(lo, 0.0) if lo > 0 else min(hi, 0.0) if hi < 0 else 0.0, lo, hi)
    for i, (p, label) in enumerate(pairs):
        assert p.mean is not None
        x = _PAD_L + i * width + width * 0.15
        y = _y(p.mean, lo, hi)
        top, height = min(y, zero), max(abs(zero - y), 1.0)
        body.append(
            f'<rect class="point" x="{x:.1f}" y="{top:.1f}" width="{width * 0.7:.1f}" height="{height:.1f}" '
            f'fill="{_COLOURS[0]}"><title>{html.escape(label)}: mean {p.mean:.4g} over {p.rewarded}</title></rect>'
        )
        body.append(
            f'<text x="{x + width * 0.35:.1f}" y="{_H - _PAD_B + 16}" text-anchor="middle" font-size="11">'
            f"{html.escape(label[:14])}</text>"
        )
    return _frame("mean reward per resources version", lo, hi, len(pairs), body, [])
