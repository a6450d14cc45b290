"""Line charts drawn as inline SVG on the server: no JavaScript, no third-party code, works offline."""

from __future__ import annotations

import math
import sys
from html import escape

PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"]
MAX_POINTS = 400

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


def line_chart(title: str, series: list[Series], *, width: int = 560, height: int = 240) -> str:
    """One SVG chart: every series on the same axes, a legend below. Non-finite values are skipped."""
    clean = [(name, _downsample([(s, v) for s, v in pts if math.isfinite(v)])) for name, pts in series]
    clean = [(name, pts) for name, pts in clean if pts]
    left, right, top, bottom = 56, 12, 26, 30
    legend_h = 16 * len(clean)
    total_h = height + legend_h
    out = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{total_h}" viewBox="0 0 {width} {total_h}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    if not clean:
        out.append(f'<text x="{left}" y="{height // 2}">no finite values</text></svg>')
        return "".join(out)
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
    for i, (name, pts) in enumerate(clean):
        color = PALETTE[i % len(PALETTE)]
        path = " ".join(f"{px(s):.1f},{py(v):.1f}" for s, v in pts)
        out.append(f'<polyline class="series" fill="none" stroke="{color}" stroke-width="1.6" points="{path}">')
        out.append(f"<title>{escape(name)}</title></polyline>")
        if len(pts) == 1:
            out.append(f'<circle cx="{px(pts[0][0]):.1f}" cy="{py(pts[0][1]):.1f}" r="3" fill="{color}"/>')
        ly = height + 12 + 16 * i
        out.append(f'<rect x="{left}" y="{ly - 9}" width="12" height="4" fill="{color}"/>')
        out.append(f'<text x="{left + 18}" y="{ly}" class="legend">{escape(name)}</text>')
    out.append("</svg>")
    return "".join(out)
