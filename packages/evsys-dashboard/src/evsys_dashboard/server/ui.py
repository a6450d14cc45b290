"""Server-rendered pages. Every user-provided string goes through ``esc``; the pages carry no script."""

from __future__ import annotations

import json
import math
from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import quote

from evsys_dashboard.server.charts import CHART_CSS, line_chart
from evsys_dashboard.server.db import ServerDB
from evsys_dashboard.server.search_view import search_record
from evsys_sdk.base.stats import Summary, summarize
from evsys_sdk.spec.phases import PHASE_KEY, phase_starts
from evsys_sdk.spec.results import ExperimentResult, baseline_model
from evsys_sdk.tracking.records import BASELINE_KIND, load_result

MAX_CHARTS = 12
MAX_SHOWN_METRICS = 6

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px}header a{color:#fff;text-decoration:none;font-weight:600}
main{padding:16px 24px;max-width:1400px}h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:22px 0 8px}
table{border-collapse:collapse;background:#fff;margin:6px 0}th,td{border:1px solid #dde1e7;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eef1f5}td.num{text-align:right;font-variant-numeric:tabular-nums}
.status{display:inline-block;padding:1px 7px;border-radius:8px;font-size:12px;background:#dde1e7}
.status-completed{background:#d5f0dc}.status-failed{background:#f8d7da}.status-running{background:#fff3cd}
.status-cancelled{background:#e2e3e5}.muted{color:#6b7280}
.box{background:#fff;border:1px solid #dde1e7;padding:8px 12px;margin:6px 0;white-space:pre-wrap}
.charts{display:flex;flex-wrap:wrap;gap:12px}.chart{background:#fff;
border:1px solid #dde1e7}.chart .grid{stroke:#eceff3}.chart .plot-area{fill:#fff;stroke:#c9ced6}
.chart text{font:11px system-ui,sans-serif;fill:#374151}.chart .chart-title{font-weight:600;font-size:12px}
pre{background:#fff;border:1px solid #dde1e7;padding:8px;overflow:auto;max-height:480px}
.constants{background:#fff;border:1px solid #dde1e7;padding:6px 12px;margin:6px 0}.constants b{font-weight:600}
tr.baseline td{background:#f3f6fb}tr.best td{background:#eef8f0}.hyp{max-width:420px}
"""


def esc(value: Any) -> str:
    return escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value.is_integer() and abs(value) < 1e15:  # a count (metrics arrive as floats): 30, not 30.0000
            return str(int(value))
        return f"{value:.4f}" if abs(value) < 1e4 else f"{value:.4g}"
    return "-" if value is None else str(value)


def date(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts)).strftime("%Y-%m-%d %H:%M")
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"


def status(value: Any) -> str:
    text = esc(value or "-")
    return f'<span class="status status-{text}">{text}</span>'


def page(title: str, body: str, *, css: str = "") -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)} · evsys dashboard</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}{CHART_CSS}{css}</style></head><body>"
        '<header><a href="/">evsys dashboard</a></header>'
        f"<main>{body}</main></body></html>"
    )


def table(header: list[str], rows: list[list[str]], *, cls: str = "", row_classes: list[str] | None = None) -> str:
    """``header`` cells are escaped here; ``rows`` cells must be escaped HTML already."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    classes = row_classes or [""] * len(rows)
    body = "".join(
        (f'<tr class="{c}">' if c else "<tr>") + "".join(rows_cell(x) for x in row) + "</tr>"
        for row, c in zip(rows, classes, strict=True)
    )
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def rows_cell(cell: str) -> str:
    return f'<td class="num">{cell[5:]}</td>' if cell.startswith("#num#") else f"<td>{cell}</td>"


def num(value: Any) -> str:
    return "#num#" + esc(fmt(value))


def metrics_text(metrics: dict[str, Any] | None, limit: int = MAX_SHOWN_METRICS) -> str:
    if not metrics:
        return '<span class="muted">-</span>'
    items = list(metrics.items())
    shown = ", ".join(f"{esc(k)}={esc(fmt(v))}" for k, v in items[:limit])
    more = f' <span class="muted">(+{len(items) - limit})</span>' if len(items) > limit else ""
    return shown + more


def link(href: str, text: Any) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>'


def _chart_order(name: str) -> tuple[int, str]:
    lower = name.lower()
    if "loss" in lower and not lower.startswith("val"):
        rank = 0
    elif "reward" in lower:
        rank = 1
    elif lower.startswith("val"):
        rank = 2
    else:
        rank = 3
    return rank, name


def _constant(points: list[tuple[int, float]]) -> float | None:
    values = {v for _, v in points}
    return values.pop() if len(values) == 1 else None


def charts(series_by_run: dict[str, dict[str, list[tuple[int, float]]]], labels: dict[str, str]) -> str:
    """One chart per step metric; a metric constant in every arm is listed as its value instead of a
    flat line, and ``phase`` marks where each phase of a multi-phase arm starts."""
    starts = [
        start
        for s in series_by_run.values()
        if PHASE_KEY in s
        for start in phase_starts((step, {PHASE_KEY: v}) for step, v in s[PHASE_KEY])
    ]
    names = sorted({n for s in series_by_run.values() for n in s if n != PHASE_KEY}, key=_chart_order)
    if not names:
        return '<p class="muted">no step metrics recorded</p>'
    out: list[str] = []
    constants: list[str] = []
    for name in names:
        series = [(labels.get(rid, rid), s[name]) for rid, s in series_by_run.items() if name in s]
        values = [_constant(points) for _, points in series]
        if all(v is not None for v in values):
            shown = (
                f"{esc(fmt(values[0]))} in every arm"
                if len(set(values)) == 1
                else ", ".join(f"{esc(label)} {esc(fmt(v))}" for (label, _), v in zip(series, values, strict=True))
            )
            constants.append(f"<div><b>{esc(name)}</b> = {shown}</div>")
        elif len(out) < MAX_CHARTS:
            out.append(line_chart(name, series, phase_starts=starts))
        else:
            out.append("")
    charted = [c for c in out if c]
    more = len(out) - len(charted)
    note = f'<p class="muted">{more} more metrics not charted</p>' if more > 0 else ""
    flat = f'<div class="constants">constant: {"".join(constants)}</div>' if constants else ""
    return f'{flat}<div class="charts">{"".join(charted)}</div>{note}'


# ---------------------------------------------------------------- pages


def _short(text: Any, limit: int = 300) -> str:
    value = text if isinstance(text, str) else json.dumps(text, default=str)
    return value if len(value) <= limit else value[:limit] + "…"


def experiments_page(db: ServerDB) -> str:
    """Every experiment with its hypothesis, status, best score and date; same-named ones are told apart
    by their short id and a ``#k`` counting up in date order."""
    experiments = db.experiments()
    seen: dict[str, int] = {}
    for e in sorted(experiments, key=lambda e: e.get("created_at") or 0):
        seen[e["name"]] = seen.get(e["name"], 0) + 1
        e["_nth"] = seen[e["name"]]
    rows = []
    for e in experiments:
        name = link(f"/experiments/{quote(str(e['id']), safe='')}", e["name"])
        if seen[e["name"]] > 1:
            name += f' <span class="muted">#{e["_nth"]}</span>'
        if e.get("is_search"):
            name += f' <a class="search-link" href="/searches/{quote(str(e["id"]), safe="")}">search view</a>'
        rows.append(
            [
                name,
                f'<code class="muted">{esc(str(e["id"])[:8])}</code>',
                f'<span class="hyp">{esc(_short(e.get("hypothesis") or "", 160))}</span>',
                status(e["status"]),
                num(e.get("n_runs")),
                num(e.get("best_score")),
                esc(date(e.get("created_at"))),
                esc(e.get("project_id") or "local"),
            ]
        )
    body = "<h1>Experiments</h1>"
    header = ["experiment", "id", "hypothesis", "status", "arms", "best score", "date", "project"]
    body += table(header, rows, cls="experiments") if rows else '<p class="muted">no experiments recorded yet</p>'
    return page("Experiments", body)


def _ci(s: Summary) -> str:
    if s.n < 2:
        return f"{esc(fmt(s.mean))} (n=1)"
    return f"{esc(fmt(s.mean))} ± {esc(fmt(s.half_width))} (n={s.n})"


def _group_stats(result: ExperimentResult, runs: list[dict[str, Any]]) -> str:
    """Group means with their 95% CIs: the success metric first, then the other summary metrics."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.get("group_name") and r.get("recipe_kind") != BASELINE_KIND:
            groups.setdefault(str(r["group_name"]), []).append(r)
    if not groups:
        return ""
    metric = result.success_metric
    stats = result.group_stats()
    rows, classes = [], []
    for name, members in groups.items():
        main = stats.get(name)
        main_cell = (
            f'{_ci(main)}<br><span class="muted">95% CI [{esc(fmt(main.ci95_low))}, {esc(fmt(main.ci95_high))}]</span>'
            if main is not None
            else '<span class="muted">-</span>'
        )
        keys: list[str] = []
        for r in members:
            for k, v in (r.get("metrics") or {}).items():
                if isinstance(v, int | float) and not isinstance(v, bool) and k not in keys:
                    keys.append(k)
        cells = []
        for k in keys[:MAX_SHOWN_METRICS]:
            values = [
                float(r["metrics"][k])
                for r in members
                if r.get("status") not in ("failed", "cancelled")
                and isinstance((r.get("metrics") or {}).get(k), int | float)
            ]
            values = [v for v in values if math.isfinite(v)]
            if values:
                cells.append(f"{esc(k)}: {_ci(summarize(values))}")
        rows.append([esc(name), num(len(members)), main_cell, "<br>".join(cells) or '<span class="muted">-</span>'])
        classes.append("best" if name == result.best_group else "")
    header = ["group", "arms", f"{metric or 'success metric'} (mean ± 95% CI)", "metrics (mean ± 95% CI)"]
    return "<h2>Groups (mean ± 95% CI over seeds)</h2>" + table(header, rows, cls="groups", row_classes=classes)


def _stage_matrix(result: ExperimentResult) -> str:
    """Continual experiments: each stage's score on every benchmark (mean ± 95% CI over chains)."""
    cells = result.stage_cells()
    if not cells:
        return ""
    benches = list(dict.fromkeys(b for row in cells.values() for b in row))
    key = result.success_metric.rsplit(".", 1)[-1] if result.success_metric else "mean_reward"
    rows = [[esc(stage), *(_ci(row[b]) if b in row else "-" for b in benches)] for stage, row in cells.items()]
    title = f"<h2>Stage x benchmark ({esc(key)}, mean ± 95% CI over chains)</h2>"
    return title + table(["stage", *benches], rows, cls="stage-matrix")


def experiment_page(db: ServerDB, experiment_id: str) -> str | None:
    exp = db.experiment(experiment_id)
    if exp is None:
        return None
    runs = db.arms(experiment_id)
    result = load_result(db, exp)
    metric = result.success_metric
    body = f"<h1>{esc(exp['name'])} {status(exp['status'])}</h1>"
    body += f'<p class="muted">id {esc(exp["id"])} · created {esc(date(exp.get("created_at")))}'
    if exp.get("best_score") is not None:
        body += f" · best score {esc(fmt(exp['best_score']))}" + (f" ({esc(metric)})" if metric else "")
        if result.best_group:
            body += f" · best group {esc(result.best_group)}"
    if search_record(exp) is not None:
        body += f' · <a class="search-link" href="/searches/{quote(str(exp["id"]), safe="")}">search view</a>'
    body += "</p>"
    extra = exp.get("extra") or {}
    for label, value in (
        ("Hypothesis", exp.get("hypothesis")),
        ("Reasoning", extra.get("hypothesis_reasoning") if isinstance(extra, dict) else None),
        ("Plan", extra.get("plan") if isinstance(extra, dict) else None),
        ("Conclusion", exp.get("conclusion")),
        ("Error", extra.get("error_message") if isinstance(extra, dict) else None),
    ):
        if value:
            body += f'<h2>{label}</h2><div class="box {label.lower()}">{esc(value)}</div>'
    rows, classes = [], []
    labels = {}
    arms = [r for r in runs if r.get("recipe_kind") != BASELINE_KIND]
    baselines = [r for r in runs if r.get("recipe_kind") == BASELINE_KIND]
    for r in arms + baselines:
        label = r.get("name") or r["id"]
        labels[r["id"]] = str(label)
        evals = [e for e in db.run_evals(r["id"]) if e.get("step") is None]
        eval_text = "<br>".join(
            f"<b>{esc(e.get('name') or e.get('benchmark_id') or 'eval')}</b>: {metrics_text(e.get('metrics'))}"
            for e in evals
        )
        train = {
            k: v
            for k, v in (r.get("metrics") or {}).items()
            if not any(k.startswith(f"{e.get('name')}/") for e in evals)
        }
        baseline = r.get("recipe_kind") == BASELINE_KIND
        rows.append(
            [
                link(f"/runs/{quote(str(r['id']), safe='')}", label),
                esc("baseline" if baseline else r.get("group_name") or "-"),
                status(r["status"]),
                metrics_text(train),
                eval_text or '<span class="muted">-</span>',
                esc(r.get("error_message") or ""),
            ]
        )
        best = result.best_arm is not None and result.best_arm.run_id == r["id"]
        classes.append("baseline" if baseline else "best" if best else "")
    count = f"{len(arms)}" + (f" + {len(baselines)} baseline{'s' * (len(baselines) > 1)}" if baselines else "")
    body += f"<h2>Arms ({count})</h2>"
    body += (
        table(["arm", "group", "status", "metrics", "eval metrics", "error"], rows, cls="arms", row_classes=classes)
        if rows
        else '<p class="muted">no arms recorded</p>'
    )
    if result.baselines:
        brows = [[esc(baseline_model(e)), esc(e.name), metrics_text(e.metrics, limit=50)] for e in result.baselines]
        body += "<h2>Baselines (untrained models)</h2>" + table(
            ["model", "benchmark", "metrics"], brows, cls="baselines"
        )
    body += _group_stats(result, arms)
    body += _stage_matrix(result)
    body += "<h2>Metric curves</h2>" + charts(db.step_series([r["id"] for r in arms]), labels)
    return page(str(exp["name"]), body)


def _breakdowns(breakdowns: Any) -> str:
    if not isinstance(breakdowns, dict) or not breakdowns:
        return ""
    parts = []
    for key, value in breakdowns.items():
        if isinstance(value, dict):
            rows = [[esc(k), metrics_text(v) if isinstance(v, dict) else esc(fmt(v))] for k, v in value.items()]
            parts.append(f"<details><summary>by {esc(key)}</summary>{table([key, 'metrics'], rows)}</details>")
        else:
            parts.append(f"<div>{esc(key)}: {esc(fmt(value))}</div>")
    return "".join(parts)


def run_page(db: ServerDB, run_id: str) -> str | None:
    run = db.run(run_id)
    if run is None:
        return None
    name = run.get("name") or run["id"]
    body = f"<h1>{esc(name)} {status(run['status'])}</h1>"
    exp_link = link(
        f"/experiments/{quote(str(run['experiment_id']), safe='')}", run.get("experiment_name") or run["experiment_id"]
    )
    body += (
        f'<p class="muted">experiment {exp_link}'
        f" · run id {esc(run['id'])} · group {esc(run.get('group_name') or '-')} · seed {esc(fmt(run.get('seed')))}"
        f" · recipe {esc(run.get('recipe_kind') or '-')}</p>"
    )
    if run.get("error_message"):
        body += f'<h2>Error</h2><div class="box error">{esc(run["error_message"])}</div>'
    metrics = run.get("metrics") or {}
    if metrics:
        body += "<h2>Metrics</h2>" + table(
            ["metric", "value"], [[esc(k), num(v)] for k, v in metrics.items()], cls="run-metrics"
        )
    evals = db.run_evals(run_id)
    body += f"<h2>Evals ({len(evals)})</h2>"
    if evals:
        rows = [
            [
                esc(e.get("name") or "-"),
                esc(e.get("benchmark_id") or "-"),
                esc(fmt(e.get("step")) if e.get("step") is not None else "final"),
                metrics_text(e.get("metrics"), limit=50),
                _breakdowns(e.get("breakdowns")),
            ]
            for e in evals
        ]
        body += table(["benchmark", "id", "step", "metrics", "breakdowns"], rows, cls="evals")
    else:
        body += '<p class="muted">no evals recorded</p>'
    checkpoints = db.checkpoints(run_id)
    body += f"<h2>Checkpoints ({len(checkpoints)})</h2>"
    if checkpoints:
        rows = [
            [
                esc(c.get("label") or "-"),
                esc(c["uri"]),
                esc(fmt(c.get("step"))),
                esc("yes" if c.get("is_final") else ""),
            ]
            for c in checkpoints
        ]
        body += table(["label", "uri", "step", "final"], rows, cls="checkpoints")
    else:
        body += '<p class="muted">no checkpoints recorded</p>'
    artifacts = db.artifacts(run_id)  # files MLflow clients uploaded (log_artifact, log_dict...)
    if artifacts:
        rows = [[esc(a["path"]), num(a["size"]), esc(date(a["created_at"]))] for a in artifacts]
        body += f"<h2>Artifacts ({len(artifacts)})</h2>" + table(["path", "bytes", "uploaded"], rows, cls="artifacts")
    predictions, total = db.predictions(run_id)
    body += f"<h2>Predictions ({total})</h2>"
    if predictions:
        keys: list[str] = []
        for p in predictions:
            for k in p if isinstance(p, dict) else ():
                if k not in keys:
                    keys.append(k)
        keys = keys[:8]
        rows = [[esc(_short(p.get(k))) if isinstance(p, dict) else esc(_short(p)) for k in keys] for p in predictions]
        body += table(keys, rows, cls="predictions")
        if total > len(predictions):
            body += f'<p class="muted">first {len(predictions)} of {total} shown</p>'
    else:
        body += '<p class="muted">no predictions recorded</p>'
    body += "<h2>Metric curves</h2>" + charts(db.step_series([run_id]), {run_id: str(name)})
    extra = run.get("extra") or {}
    if extra:
        body += f"<h2>Details</h2><pre>{esc(json.dumps(extra, indent=2, default=str))}</pre>"
    if run.get("run_config"):
        config = esc(json.dumps(run["run_config"], indent=2, default=str))
        body += f"<details><summary>Run config</summary><pre>{config}</pre></details>"
    return page(str(name), body)
