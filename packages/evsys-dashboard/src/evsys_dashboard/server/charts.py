"""Charts drawn as inline SVG on the server: no JavaScript, no third-party code, works offline.

Overlapping lines stay apart: each series has its own colour, dash pattern and marker shape; hovering a
line or its legend entry highlights it, and the legend's checkboxes hide and show lines (CSS ``:has``,
still no script). A multi-phase run's phase starts are dotted vertical lines. ``xy_chart`` draws markers
with error bars and a step line (a search's best so far, a score against a param), hover titles on each;
``parallel_chart`` one line per candidate across an axis per searched param and the score.
"""

from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass
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
    ".chart.xy .best-line{stroke:#1f77b4;stroke-width:2}.chart.xy .ci{stroke:#9aa3af;stroke-width:1.4}"
    ".chart.xy .point{fill:#1f77b4;fill-opacity:.55;stroke:#1f4e79}.chart.xy .point.best{fill:#2ca02c;fill-opacity:1;"
    "stroke:#14532d}.chart.xy .point.failed{fill:#d62728}.chart.xy .point:hover{r:6;fill-opacity:1}"
    ".chart.parallel .paxis{stroke:#6b7280}.chart.parallel .pline{stroke-width:1.6;opacity:.75}"
    ".chart.parallel:has(.pline:hover) .pline{opacity:.2}.chart.parallel .pline:hover{opacity:1;stroke-width:3.2}"
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


def _padded(lo: float, hi: float, share: float) -> tuple[float, float]:
    """``lo``..``hi`` widened by ``share`` of the span on each side (a band around a single value),
    within the float range."""
    half = hi / 2 - lo / 2
    pad = half * 2 * share if half > sys.float_info.min else abs(lo) * 0.05 or 1.0
    big = sys.float_info.max
    return max(lo - pad, -big) if math.isfinite(lo - pad) else -big, min(hi + pad, big) if math.isfinite(
        hi + pad
    ) else big


@dataclass(frozen=True)
class Point:
    """A marker at (x, y), with an optional error bar (``low`` .. ``high``) and a hover ``label``; ``cls``
    styles it (``best``, ``failed``)."""

    x: float
    y: float
    label: str
    low: float | None = None
    high: float | None = None
    cls: str = ""


def xy_chart(
    title: str,
    *,
    x_label: str,
    y_label: str,
    points: list[Point] | None = None,
    steps: list[tuple[float, float]] | None = None,
    log_x: bool = False,
    categories: list[str] | None = None,
    width: int = 420,
    height: int = 260,
) -> str:
    """One SVG chart of markers (with error bars, clipped to the plot) and a step line (a running best:
    flat until the next point). ``categories``: x holds their indices and is labelled with them;
    ``log_x``: a log axis (values > 0). The y range fits the markers and the line, not the error bars,
    so one wide interval does not flatten the rest."""
    points = [p for p in points or [] if math.isfinite(p.x) and math.isfinite(p.y) and (p.x > 0 or not log_x)]
    steps = [(x, y) for x, y in steps or [] if math.isfinite(x) and math.isfinite(y) and (x > 0 or not log_x)]
    left, right, top, bottom = 56, 12, 26, 40
    pw, ph = width - left - right, height - top - bottom
    out = [
        f'<svg class="chart xy" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]
    xs = [p.x for p in points] + [x for x, _ in steps]
    ys = [p.y for p in points] + [y for _, y in steps]
    if not xs:
        out.append(f'<text x="{left}" y="{height // 2}">nothing scored yet</text></svg>')
        return "".join(out)

    def tx(x: float) -> float:
        return math.log10(x) if log_x else x

    x0, x1 = min(map(tx, xs)), max(map(tx, xs))
    y0, y1 = min(ys), max(ys)
    if categories is not None:  # x holds category indices, each in a slot of width 1
        x0, x1 = -0.5, len(categories) - 0.5
    else:
        x0, x1 = _padded(x0, x1, 0.05)
    y0, y1 = _padded(y0, y1, 0.08)
    # positions from halves, so that no difference of two stored values overflows (as in line_chart)
    xspan, yspan = x1 / 2 - x0 / 2, y1 / 2 - y0 / 2

    def px(x: float) -> float:
        return left + (tx(x) / 2 - x0 / 2) / xspan * pw

    def py(y: float) -> float:
        return top + (1 - (y / 2 - y0 / 2) / yspan) * ph

    def clamp(y: float) -> float:
        return min(max(py(y), top), top + ph)

    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" class="plot-area"/>')
    for t in _nice_ticks(y0, y1):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_label(t)}</text>')
    if categories is not None:
        ticks = [(float(i), c) for i, c in enumerate(categories)]
    elif log_x:
        low, high = max(math.ceil(x0), -307), min(math.floor(x1), 308)  # decades a float holds
        every = max(1, math.ceil((high - low + 1) / 6))
        ticks = [(10.0**e, _label(10.0**e)) for e in range(low, high + 1, every)]
    else:
        ticks = [(t, _label(t)) for t in _nice_ticks(x0, x1)]
    for t, text in ticks:
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" class="grid"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 14}" text-anchor="middle" class="tick">{escape(text)}</text>')
    out.append(f'<text x="{left + pw}" y="{top + ph + 30}" text-anchor="end" class="tick">{escape(x_label)}</text>')
    mid = top + ph / 2
    out.append(
        f'<text x="12" y="{mid:.1f}" text-anchor="middle" class="tick" transform="rotate(-90 12 {mid:.1f})">'
        f"{escape(y_label)}</text>"
    )
    if steps:
        path = [f"{px(steps[0][0]):.1f},{py(steps[0][1]):.1f}"]
        for (_, before), (x, y) in itertools.pairwise(steps):
            path.append(f"{px(x):.1f},{py(before):.1f} {px(x):.1f},{py(y):.1f}")
        out.append(f'<polyline class="best-line" fill="none" points="{" ".join(path)}"/>')
    # points on one x (a choice, an int) are spread a few pixels apart, so that their CI bars stay apart
    shared: dict[float, list[int]] = {}
    for i, p in enumerate(points):
        shared.setdefault(round(px(p.x), 1), []).append(i)
    dodge = {
        i: (k - (len(ids) - 1) / 2) * min(6.0, pw / 8 / len(ids)) for ids in shared.values() for k, i in enumerate(ids)
    }
    for i, p in enumerate(points):
        x, y = px(p.x) + dodge[i], py(p.y)
        if p.low is not None and p.high is not None and math.isfinite(p.low) and math.isfinite(p.high):
            out.append(f'<line class="ci" x1="{x:.1f}" x2="{x:.1f}" y1="{clamp(p.high):.1f}" y2="{clamp(p.low):.1f}"/>')
        out.append(
            f'<circle class="point {escape(p.cls)}" cx="{x:.1f}" cy="{y:.1f}" r="4">'
            f"<title>{escape(p.label)}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


@dataclass(frozen=True)
class Dimension:
    """An axis of a parallel-coordinates chart: ``lo``..``hi`` (log10 positions when ``log``), or
    ``categories`` spaced evenly; ``flip`` puts ``lo`` at the top."""

    name: str
    lo: float = 0.0
    hi: float = 1.0
    log: bool = False
    categories: list[str] | None = None
    flip: bool = False

    def position(self, value: float) -> float:
        """0 (bottom) .. 1 (top)."""
        if self.categories is not None:
            share = (value + 0.5) / len(self.categories)
        else:
            lo, hi = (math.log10(self.lo), math.log10(self.hi)) if self.log else (self.lo, self.hi)
            v = math.log10(value) if self.log else value
            half = hi / 2 - lo / 2
            share = 0.5 if half <= sys.float_info.min else (v / 2 - lo / 2) / half
        share = min(max(share, 0.0), 1.0)
        return 1 - share if self.flip else share

    def ticks(self) -> list[tuple[float, str]]:
        if self.categories is not None:
            return [(float(i), c) for i, c in enumerate(self.categories)]
        return [(self.lo, _label(self.lo)), (self.hi, _label(self.hi))]


def parallel_chart(
    title: str, dimensions: list[Dimension], lines: list[tuple[list[float], str, float]], *, height: int = 280
) -> str:
    """Every line (values, one per dimension; its hover label; its shade 0 (worst) .. 1 (best)) across
    the vertical axes of ``dimensions``; the best lines are drawn last, on top."""
    left, right, top, bottom = 24, 24, 30, 44
    width = max(420, 150 * len(dimensions))
    pw, ph = width - left - right, height - top - bottom
    gap = pw / max(1, len(dimensions) - 1)
    out = [
        f'<svg class="chart parallel" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>',
    ]

    def y(share: float) -> float:
        return top + (1 - share) * ph

    for values, label, shade in sorted(lines, key=lambda line: line[2]):
        if len(values) != len(dimensions) or not all(math.isfinite(v) for v in values):
            continue
        pts = " ".join(
            f"{left + i * gap:.1f},{y(d.position(v)):.1f}"
            for i, (d, v) in enumerate(zip(dimensions, values, strict=True))
        )
        color = f"hsl({120 * min(max(shade, 0.0), 1.0):.0f},70%,40%)"  # red (worst) .. green (best)
        out.append(f'<polyline class="pline" fill="none" stroke="{color}" points="{pts}">')
        out.append(f"<title>{escape(label)}</title></polyline>")
    for i, d in enumerate(dimensions):
        x = left + i * gap
        anchor = "start" if i == 0 else "end" if i == len(dimensions) - 1 else "middle"
        out.append(f'<line class="paxis" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}"/>')
        for value, text in d.ticks():
            out.append(f'<text x="{x + 4:.1f}" y="{y(d.position(value)) + 4:.1f}" class="tick">{escape(text)}</text>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 18}" text-anchor="{anchor}" class="tick">{escape(d.name)}</text>')
    out.append("</svg>")
    return "".join(out)
