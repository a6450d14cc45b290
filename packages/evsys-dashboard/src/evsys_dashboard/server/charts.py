"""Line charts drawn as inline SVG on the server: no JavaScript, no third-party code, works offline.

Overlapping lines stay apart: each series has its own colour, dash pattern and marker shape; hovering a
line or its legend entry highlights it, and the legend's checkboxes hide and show lines (CSS ``:has``,
still no script). A multi-phase run's phase starts are dotted vertical lines.
"""

from __future__ import annotations

import math
import sys
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
MAX_POINTS = 400
MAX_SERIES = 40  # series with their own toggle and highlight rules (CSS below)
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = 10  # marker shapes drawn per series, evenly spaced along it

# Per-series rules for the legend toggles and highlights: ``.tN`` is series N's checkbox, ``.sN`` its line.
CHART_CSS = "".join(
    f".chart-box:has(.t{i}:not(:checked)) .s{i}{{display:none}}"
    f".chart-box:has(.l{i}:hover) .s{i}{{stroke-width:3.2;opacity:1}}"
    for i in range(MAX_SERIES)
) + (
    ".chart-box{background:#fff;border:1px solid #dde1e7;padding:0 0 6px}.chart-box svg.chart{border:0}"
    ".chart-box:has(.series:hover) .series,.chart-box:has(.legend label:hover) .series{opacity:.3}"
    ".chart-box .series:hover{opacity:1;stroke-width:3.2}.chart .phase-start{stroke:#6b7280;stroke-dasharray:2 3}"
    ".legend{display:flex;flex-wrap:wrap;gap:2px 12px;padding:0 12px;font-size:12px;max-width:536px}"
    ".legend label{cursor:pointer;white-space:nowrap}.legend svg{vertical-align:middle;margin-right:3px}"
)

Series = tuple[str, list[tuple[int, float]]]


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi / 2 - lo / 2) / max(1, n - 1) * 2  # halves: the span of +-1.7e308 overflows, its half does not
    if not (sys.float_info.min < raw < sys.float_info.max / 10):  # a span too small or too large for nice steps
        return [lo, hi]
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks = []
    v = start
    while v <= hi + step * 1e-9 and len(ticks) < 12:
        ticks.append(round(v, 12))
        v += step
    return ticks


def _label(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.2g}"
    return f"{v:.4g}"


def _downsample(points: list[tuple[int, float]]) -> list[tuple[int, float]]:
    if len(points) <= MAX_POINTS:
        return points
    stride = math.ceil(len(points) / MAX_POINTS)
    out = points[::stride]
    if out[-1] != points[-1]:
        out.append(points[-1])
    return out


def _marker(shape: int, x: float, y: float, color: str, cls: str) -> str:
    """One of four marker shapes (circle, square, triangle, diamond) centred on (x, y)."""
    kind = shape % 4
    if kind == 0:
        return f'<circle class="{cls}" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"/>'
    if kind == 1:
        return f'<rect class="{cls}" x="{x - 2.8:.1f}" y="{y - 2.8:.1f}" width="5.6" height="5.6" fill="{color}"/>'
    points = (
        f"{x:.1f},{y - 3.6:.1f} {x + 3.4:.1f},{y + 2.6:.1f} {x - 3.4:.1f},{y + 2.6:.1f}"
        if kind == 2
        else f"{x:.1f},{y - 3.8:.1f} {x + 3.4:.1f},{y:.1f} {x:.1f},{y + 3.8:.1f} {x - 3.4:.1f},{y:.1f}"
    )
    return f'<polygon class="{cls}" points="{points}" fill="{color}"/>'


def _swatch(i: int, color: str) -> str:
    dash = DASHES[i % len(DASHES)]
    return (
        f'<svg width="26" height="10" aria-hidden="true"><line x1="1" x2="25" y1="5" y2="5" stroke="{color}" '
        f'stroke-width="2" stroke-dasharray="{dash}"/>{_marker(i, 13, 5, color, "")}</svg>'
    )


def line_chart(
    title: str,
    series: list[Series],
    *,
    phase_starts: list[tuple[int, int]] | None = None,
    width: int = 560,
    height: int = 240,
) -> str:
    """One SVG chart: every series on the same axes, a legend of toggles below. Non-finite values are
    skipped; ``phase_starts`` ((step, phase) pairs) are marked."""
    clean = [(name, _downsample([(s, v) for s, v in pts if math.isfinite(v)])) for name, pts in series]
    clean = [(name, pts) for name, pts in clean if pts]
    left, right, top, bottom = 56, 12, 26, 30
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not clean:
        out.append(f'<text x="{left}" y="{height // 2}">no finite values</text></svg>')
        return f'<div class="chart-box">{"".join(out)}</div>'
    xs = [s for _, pts in clean for s, _ in pts]
    ys = [v for _, pts in clean for _, v in pts]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 / 2 - y0 / 2 <= sys.float_info.min:  # flat (or flat but for a subnormal): pad it to a visible band
        pad = abs(y0) * 0.05 or 1.0
        y0, y1 = max(y0 - pad, -sys.float_info.max), min(y1 + pad, sys.float_info.max)
    pw, ph = width - left - right, height - top - bottom
    # positions from halves, so that no difference of two stored values overflows
    xspan, yspan = x1 / 2 - x0 / 2, y1 / 2 - y0 / 2

    def px(x: float) -> float:
        return left + (x / 2 - x0 / 2) / xspan * pw

    def py(y: float) -> float:
        return top + (1 - (y / 2 - y0 / 2) / yspan) * ph

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot-area"/>')
    for t in _nice_ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_label(t)}</text>')
    for t in _nice_ticks(float(x0), float(x1)):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle" class="tick">{_label(t)}</text>')
    out.append(f'<text x="{left + pw}" y="{top + ph + 27}" text-anchor="end" class="tick">step</text>')
    for step, phase in sorted(set(phase_starts or [])):
        if x0 <= step <= x1:
            x = px(step - 0.5)  # between the last step of one phase and the first of the next
            out.append(f'<line class="phase-start" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}"/>')
            out.append(f'<text x="{x + 3:.1f}" y="{top + 10}" class="tick">phase {phase}</text>')
    legend = []
    for i, (name, pts) in enumerate(clean):
        color, cls = PALETTE[i % len(PALETTE)], f"s{i}"
        path = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in pts)
        dash = DASHES[i % len(DASHES)]
        out.append(
            f'<polyline class="series {cls}" fill="none" stroke="{color}" stroke-width="1.6" '
            f'stroke-dasharray="{dash}" points="{path}"><title>{escape(name)}</title></polyline>'
        )
        every = max(1, len(pts) // MARKERS)
        # offset per series, so that markers of lines lying on top of each other do not hide each other
        for s, v in pts[(i * every // 4) % every :: every] if len(pts) > 1 else pts:
            out.append(_marker(i, px(s), py(v), color, f"marker {cls}"))
        legend.append(
            f'<label class="l{i}"><input type="checkbox" class="t{i}" checked '
            f'aria-label="show {escape(name)}">{_swatch(i, color)}{escape(name)}</label>'
        )
    out.append("</svg>")
    return f'<div class="chart-box">{"".join(out)}<div class="legend">{"".join(legend)}</div></div>'
