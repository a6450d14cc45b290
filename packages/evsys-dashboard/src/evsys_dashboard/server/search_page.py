"""The search page (``/searches/{experiment_id}``): a search's spend, best so far, candidates, lineage,
params against the score, and rejected proposals. Server-rendered like the other pages: no script, every
user string escaped; the candidates table sorts through links (``?sort=mean&order=desc``)."""

from __future__ import annotations

import json
import math
from typing import Any
from urllib.parse import quote

from evsys_dashboard.server.charts import Dimension, Point, parallel_chart, xy_chart
from evsys_dashboard.server.db import ServerDB
from evsys_dashboard.server.search_view import (
    CandidateRow,
    Edge,
    Order,
    ParamPoint,
    SearchView,
    SortKey,
    search_view,
    sort_candidates,
)
from evsys_dashboard.server.ui import date, esc, fmt, link, num, page, status, table

SEARCH_CSS = (
    ".spent td:first-child{font-weight:600}.patch code,.tree code{font-size:12px}"
    ".tree,.tree ul{list-style:none;margin:0;padding-left:18px}.tree{padding-left:0}"
    ".tree li{position:relative;margin:2px 0;padding-left:12px;border-left:1px solid #c9ced6}"
    ".tree .node{display:inline-block;background:#fff;border:1px solid #dde1e7;padding:2px 8px;border-radius:4px}"
    ".tree .node.best{background:#eef8f0;border-color:#2ca02c}.tree .node.failed{background:#fbeaea}"
    ".tree .edge{display:block;color:#374151;font-size:12px;margin:1px 0 1px 4px}"
    ".tree .edge .before{color:#b42318}.tree .edge .after{color:#067647}"
    "th a{color:inherit}th a.sorted{text-decoration:underline}.status-stopped{background:#e0e7ff}"
    "table.candidates td.state,table.candidates td.ci{white-space:nowrap}"
)
MAX_PATCH_TEXT = 120  # characters of a value shown in a patch


def value_text(value: Any) -> str:
    """A patch value, short: floats in 4 significant digits (1e-04), the rest as JSON."""
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.4g}"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_PATCH_TEXT else text[:MAX_PATCH_TEXT] + "…"


def _patch(patch: dict[str, Any]) -> str:
    if not patch:
        return '<span class="muted">-</span>'
    return "<br>".join(f"<code>{esc(path)}={esc(value_text(v))}</code>" for path, v in patch.items())


def _ci(c: CandidateRow) -> str:
    if c.ci95 is None:
        return '<span class="muted">-</span>'
    return f"[{esc(fmt(c.ci95[0]))}, {esc(fmt(c.ci95[1]))}]"


def _spent(view: SearchView) -> str:
    spent, budget = view.spent, view.budget

    def of(key: str, unit: str = "") -> str:
        limit = budget.get(key)
        shown = esc(fmt(spent.get(key, 0))) + unit
        return shown + (f' <span class="muted">of {esc(fmt(limit))}{unit}</span>' if limit is not None else "")

    rows = [
        ["evaluations", f"{of('candidates')} candidates, {of('arms')} arms"],
        [
            "arm seconds",
            of("seconds", " s")
            + (f" (each arm {esc(fmt(budget['arm_seconds']))} s)" if budget.get("arm_seconds") else ""),
        ],
        ["train steps", esc(fmt(spent.get("train_steps", 0)))],
        ["inference calls", esc(fmt(spent.get("inference_calls", 0)))],
        ["rejected proposals", esc(fmt(view.n_rejected)) + ' <span class="muted">(never charged)</span>'],
    ]
    proposer = spent.get("proposer")
    if isinstance(proposer, dict) and proposer:
        rows.append(["proposer", ", ".join(f"{esc(k)} {esc(fmt(v))}" for k, v in proposer.items())])
    else:
        rows.append(["proposer", f"{esc(view.proposer)} <span class='muted'>(no model calls)</span>"])
    if view.confirm:
        c = view.confirm
        mean = c.get("mean")
        ci = c.get("ci95") or []
        shown = (
            f"{esc(fmt(mean))} [{esc(fmt(ci[0]))}, {esc(fmt(ci[1]))}] (n={len(c.get('scores') or [])})"
            if mean is not None and len(ci) == 2
            else esc(c.get("status") or "failed")
        )
        rows.append(["confirmation", f"{esc(view.best)} on fresh seeds {esc(c.get('seeds'))}: {shown}"])
    return table(["", "spent (of the budget)"], [[esc(k), v] for k, v in rows], cls="spent")


def _best_charts(view: SearchView) -> str:
    points = view.best_so_far
    if not points:
        return '<p class="muted">no candidate scored yet</p>'
    metric = view.metric or "score"
    finished = [c for c in view.candidates if c.status != "pending"]
    by_seconds, by_count = [], []
    seconds = 0.0
    for i, c in enumerate(finished, start=1):
        seconds += c.seconds
        if c.mean is not None:
            label = f"{c.id} ({c.operator}): {fmt(c.mean)}" + (
                f" [{fmt(c.ci95[0])}, {fmt(c.ci95[1])}]" if c.ci95 else ""
            )
            cls = "best" if c.id == view.best else ""
            low, high = c.ci95 or (None, None)
            by_seconds.append(Point(seconds, c.mean, label, low, high, cls))
            by_count.append(Point(float(i), c.mean, label, low, high, cls))
    best = "highest" if view.maximize else "lowest"
    return (
        '<div class="charts best-so-far">'
        + xy_chart(
            f"best mean so far ({best}), by arm seconds",
            x_label="spent arm seconds",
            y_label=metric,
            points=by_seconds,
            steps=[(p.seconds, p.best) for p in points],
        )
        + xy_chart(
            f"best mean so far ({best}), by candidates evaluated",
            x_label="candidates evaluated",
            y_label=metric,
            points=by_count,
            steps=[(float(p.evaluated), p.best) for p in points],
        )
        + "</div>"
    )


SORTABLE: list[tuple[str, SortKey | None]] = [
    ("#", None),
    ("candidate", "id"),
    ("generation", "generation"),
    ("operator", None),
    ("parents", None),
    ("status", None),
    ("mean", "mean"),
    ("95% CI", None),
    ("n", "n"),
    ("arm s", "seconds"),
    ("patch", None),
    ("runs", None),
]


def _status_notes(c: CandidateRow) -> str:
    """Under the status: the error, or where multi-fidelity stopped it and each rung's mean."""
    notes = [esc(c.error or c.message)] if c.error or c.message else []
    notes += [f"@{step}: {esc(fmt(mean))} (n={n})" for step, (mean, n) in c.rungs.items()]
    return "".join(f'<br><span class="muted">{n}</span>' for n in notes)


def _run_label(run: dict[str, Any]) -> str:
    return f"seed {fmt(run.get('seed'))}" + (f" @{run['rung']}" if run.get("rung") else "")


def _candidates(view: SearchView, key: SortKey, order: Order | None) -> str:
    rows_in_order = sort_candidates(view.candidates, key, order, maximize=view.maximize)
    shown_order = order or ("desc" if key == "mean" and view.maximize else "asc")
    head = []
    for label, sort in SORTABLE:
        if sort is None:
            head.append(f"<th>{esc(label)}</th>")
            continue
        flip = "asc" if sort == key and shown_order == "desc" else "desc" if sort == key else None
        if flip is None:  # another column: its own default order first
            flip = "desc" if sort == "mean" and view.maximize else "asc"
        arrow = (" ▼" if shown_order == "desc" else " ▲") if sort == key else ""
        cls = ' class="sorted"' if sort == key else ""
        head.append(f'<th><a{cls} href="?sort={sort}&amp;order={flip}">{esc(label)}{arrow}</a></th>')
    body = []
    for rank, c in enumerate(rows_in_order, start=1):
        runs = (
            " ".join(link(f"/runs/{quote(str(r['id']), safe='')}", _run_label(r)) for r in c.runs)
            or '<span class="muted">-</span>'
        )
        cells = [
            f'<td class="num">{rank}</td>',
            f'<td id="{esc(c.id)}"><b>{esc(c.id)}</b></td>',
            f'<td class="num">{c.generation}</td>',
            f"<td>{esc(c.operator)}</td>",
            f"<td>{esc(', '.join(c.parents) or '-')}</td>",
            f'<td class="state">{status(c.status)}{_status_notes(c)}</td>',
            f'<td class="num mean">{esc(fmt(c.mean))}</td>',
            f'<td class="num ci">{_ci(c)}</td>',
            f'<td class="num n">{c.n}</td>',
            f'<td class="num">{esc(fmt(round(c.seconds, 3)))}</td>',
            f'<td class="patch">{_patch(c.patch)}</td>',
            f"<td>{runs}</td>",
        ]
        cls = ' class="best"' if c.id == view.best else ""
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    omitted = (
        f'<p class="muted">{view.omitted} older candidates are not on the record (a very large search keeps its '
        "newest and the best)</p>"
        if view.omitted
        else ""
    )
    return (
        f'<table class="candidates"><thead><tr>{"".join(head)}</tr></thead><tbody>{"".join(body)}</tbody></table>'
        + omitted
    )


def _changes(edge: Edge) -> str:
    if not edge.changes:
        return '<span class="muted">no change</span>'
    return ", ".join(
        f'<code>{esc(ch.path)}: <span class="before">{esc(value_text(ch.before))}</span> → '
        f'<span class="after">{esc(value_text(ch.after))}</span></code>'
        for ch in edge.changes
    )


def _lineage(view: SearchView) -> str:
    """A tree under the base recipe: each candidate under its first parent, each edge its dotted-path diff;
    a crossover's second parent is named with its own diff."""
    by_id = {c.id: c for c in view.candidates}
    edges: dict[str, list[Edge]] = {}
    for e in view.edges:
        edges.setdefault(e.child, []).append(e)
    children: dict[str | None, list[str]] = {}
    for c in view.candidates:
        children.setdefault(edges[c.id][0].parent, []).append(c.id)

    def node(cid: str) -> str:
        c = by_id[cid]
        first, *others = edges[cid]
        cls = "best" if cid == view.best else "failed" if c.status == "failed" else ""
        score = f"{fmt(c.mean)} {_ci(c)}" if c.mean is not None else esc(c.status)
        text = f'<span class="node {cls}" id="node-{esc(cid)}"><b>{esc(cid)}</b> {esc(c.operator)} · {score}</span>'
        source = "base" if first.parent is None else first.parent
        text += f'<span class="edge" data-parent="{esc(source)}">from {esc(source)}: {_changes(first)}</span>'
        for e in others:
            text += f'<span class="edge" data-parent="{esc(e.parent)}">and {esc(e.parent)}: {_changes(e)}</span>'
        return text

    # Depth first with a stack of its own: a long search's lineage is deeper than Python's recursion limit
    parts = ['<ul class="tree"><li><span class="node"><b>base recipe</b></span><ul>']
    stack = [iter(children.get(None, []))]
    seen: set[str] = set()
    while stack:
        cid = next(stack[-1], None)
        if cid is None:  # every child shown: close the list, and the item it hangs under
            stack.pop()
            parts.append("</ul></li>")
        elif cid not in seen:  # (a record naming one id twice draws it once)
            seen.add(cid)
            parts.append(f"<li>{node(cid)}<ul>")
            stack.append(iter(children.get(cid, [])))
    return "".join(parts) + "</ul>"


def _axis(view: SearchView, path: str, points: list[ParamPoint]) -> tuple[list[float], bool, list[str] | None]:
    """Where each point sits on ``path``'s axis: (positions, log scale, categories or None). Choices and
    non-numbers are categories (the space's order first); numbers a linear or log (``log_uniform``) axis."""
    axis = view.space.get(path, {})
    numeric = all(isinstance(p.value, int | float) and not isinstance(p.value, bool) for p in points)
    if numeric and axis.get("kind") != "choice":
        values = [float(p.value) for p in points]
        spans_decades = min(values) > 0 and max(values) / min(values) >= 100
        return (
            values,
            axis.get("kind") == "log_uniform" or (not axis and spans_decades),
            None,
        )  # not axis: off the space
    choices = axis.get("values") if axis.get("kind") == "choice" else None
    categories = [value_text(v) for v in (choices or [])]
    for p in points:
        if value_text(p.value) not in categories:
            categories.append(value_text(p.value))
    return [float(categories.index(value_text(p.value))) for p in points], False, categories


def _parallel(view: SearchView) -> str:
    """One line per scored candidate across an axis per searched path and the score (best at the top)."""
    paths = [path for path, points in view.params.items() if points]
    scored = [(c, c.mean) for c in view.candidates if c.mean is not None]
    if len(paths) < 2 or not scored:
        return ""
    dims, where = [], {}
    for path in paths:
        points = view.params[path]
        xs, log, categories = _axis(view, path, points)
        space_range = view.space.get(path, {}).get("values") if categories is None else None
        ends = [*xs, *(float(v) for v in space_range or [] if isinstance(v, int | float))]  # the space's range
        lo, hi = min(ends), max(ends)
        dims.append(Dimension(path.rsplit(".", 1)[-1], lo, hi, log=log and lo > 0, categories=categories))
        where[path] = {p.candidate: x for p, x in zip(points, xs, strict=True)}
    score = Dimension(view.metric or "score", min(m for _, m in scored), max(m for _, m in scored))
    dims.append(Dimension(score.name, score.lo, score.hi, flip=not view.maximize))  # the best at the top
    lines = []
    for c, mean in scored:
        values = [where[path].get(c.id, math.nan) for path in paths] + [mean]
        share = score.position(mean)
        shade = share if view.maximize else 1 - share
        label = f"{c.id}: " + ", ".join(f"{p}={value_text(c.patch.get(p))}" for p in paths) + f" -> {fmt(mean)}"
        lines.append((values, label, shade))
    return parallel_chart("every candidate across the params (green: best)", dims, lines)


def _params(view: SearchView) -> str:
    charts = []
    metric = view.metric or "score"
    for path, points in view.params.items():
        if not points:
            continue
        xs, log_x, categories = _axis(view, path, points)
        marks = [
            Point(
                x,
                p.mean,
                f"{p.candidate}: {path}={value_text(p.value)}, {metric} {fmt(p.mean)}",
                low=p.ci95[0] if p.ci95 else None,
                high=p.ci95[1] if p.ci95 else None,
                cls="best" if p.candidate == view.best else "",
            )
            for x, p in zip(xs, points, strict=True)
        ]
        charts.append(xy_chart(path, x_label=path, y_label=metric, points=marks, log_x=log_x, categories=categories))
    if not charts:
        return '<p class="muted">no candidate scored yet</p>'
    return f'<div class="parallel-box">{_parallel(view)}</div><div class="charts params">{"".join(charts)}</div>'


def _rejected(view: SearchView) -> str:
    """One row per distinct (patch, reason), with how often it was proposed."""
    if not view.rejected:
        return '<p class="muted">no proposal was rejected</p>'
    counts: dict[str, list[Any]] = {}
    for r in view.rejected:
        patch = r.get("patch") if isinstance(r.get("patch"), dict) else {}
        key = json.dumps([patch, r.get("reason")], sort_keys=True, default=str)
        counts.setdefault(key, [patch, r.get("reason"), 0])[2] += 1
    rows = [[_patch(patch), esc(reason), num(times)] for patch, reason, times in counts.values()]
    note = (
        f'<p class="muted">the latest {len(view.rejected)} of {view.n_rejected} shown</p>'
        if view.n_rejected > len(view.rejected)
        else ""
    )
    return table(["patch", "reason", "times"], rows, cls="rejected") + note


def search_page(db: ServerDB, experiment_id: str, sort: SortKey = "mean", order: Order | None = None) -> str | None:
    """The page, or None when the experiment does not exist or is no search."""
    view = search_view(db, experiment_id)
    if view is None:
        return None
    exp = view.experiment
    exp_link = link(f"/experiments/{quote(str(exp['id']), safe='')}", "arms and curves")
    body = f"<h1>{esc(view.name)} {status(exp.get('status'))}</h1>"
    body += (
        f'<p class="muted">search {esc(exp["id"])} · created {esc(date(exp.get("created_at")))} · objective '
        f"<b>{esc(view.metric)}</b> ({esc(view.direction)}) · proposer {esc(view.proposer)} · {exp_link}</p>"
    )
    if exp.get("conclusion"):
        body += f'<div class="box conclusion">{esc(exp["conclusion"])}</div>'
    body += "<h2>Budget spent</h2>" + _spent(view)
    body += "<h2>Best so far</h2>" + _best_charts(view)
    body += f"<h2>Candidates ({len(view.candidates)})</h2>" + _candidates(view, sort, order)
    body += "<h2>Lineage</h2>" + _lineage(view)
    body += "<h2>Params against the score</h2>" + _params(view)
    body += f"<h2>Rejected proposals ({view.n_rejected})</h2>" + _rejected(view)
    return page(f"search {view.name}", body, css=SEARCH_CSS)
