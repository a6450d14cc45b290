"""Human-readable summaries of experiments for the CLI."""

from __future__ import annotations

from typing import Any

from evsys_sdk.spec.results import ArmResult, ExperimentResult, baseline_model


def fmt(value: Any) -> str:
    """A count as an integer (metrics arrive as floats: ``n_tasks=30``, not ``30.0000``), any other float
    to 4 significant digits."""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    return "\n".join(lines)


def _key_metrics(arm: ArmResult, limit: int = 4) -> str:
    key = ("eval/", "train/final", "reward/")
    shown = arm.eval_metrics or {k: v for k, v in arm.metrics.items() if k.startswith(key)}
    return ", ".join(f"{k}={fmt(v)}" for k, v in list(shown.items())[:limit]) or "-"


def experiment_summary(result: ExperimentResult) -> str:
    """Arms, group statistics, baselines, the continual stage matrix, best arm and conclusion."""
    metric = result.success_metric
    header = ["arm", "status", *([metric] if metric else []), "key metrics", "seconds"]
    rows = []
    for arm in result.arms:
        status = f"{arm.status} (resumed)" if arm.resumed else arm.status
        score = [fmt(arm.score(metric))] if metric else []
        seconds = (arm.train_seconds or 0.0) + (arm.eval_seconds or 0.0)
        rows.append([arm.name, status, *score, _key_metrics(arm), f"{seconds:.2f}"])
        if arm.error:
            rows.append(["", "", *([""] if metric else []), f"error: {arm.error}", ""])
    out = [f"experiment {result.name}: {result.status}", table(header, rows)]
    stats = result.group_stats()
    if stats:
        out.append(f"\ngroups ({metric}, mean +- std, 95% CI):")
        for g, s in stats.items():
            out.append(f"  {g}: {fmt(s.mean)} +- {fmt(s.std)} (n={s.n}, [{fmt(s.ci95_low)}, {fmt(s.ci95_high)}])")
    if result.baselines:
        out.append("\nbaselines:")
        out += [
            f"  {baseline_model(e)} on {e.name}: " + ", ".join(f"{k}={fmt(v)}" for k, v in e.metrics.items())
            for e in result.baselines
        ]
    matrix = result.stage_matrix()
    if matrix:
        benches = list(dict.fromkeys(b for row in matrix.values() for b in row))
        key = result.success_metric.rsplit(".", 1)[-1] if result.success_metric else "mean_reward"
        out.append(f"\nstage x benchmark ({key}):")
        out.append(table(["stage", *benches], [[s, *(fmt(row.get(b)) for b in benches)] for s, row in matrix.items()]))
    if result.best_arm is not None and result.best_group is not None:
        out.append(
            f"\nbest group: {result.best_group} ({metric} mean={fmt(result.best_score)}); its best arm: "
            f"{result.best_arm.name} ({fmt(result.best_arm.score(metric) if metric else None)})"
        )
    elif result.best_arm is not None:
        out.append(f"\nbest arm: {result.best_arm.name} ({metric}={fmt(result.best_score)})")
    out.append(f"conclusion: {result.conclusion}")
    return "\n".join(out)
