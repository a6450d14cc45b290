"""``evsys runs plot``: one curve per arm of a recorded step metric (needs matplotlib: the plot extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evsys_sdk.errors import EvsysError


def plot_metric(store: Any, experiment: dict[str, Any], metric: str, output: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise EvsysError('plotting needs matplotlib: pip install "evsys-core[plot]"') from None
    curves = {}
    for run in store.experiment_runs(experiment["id"]):
        points = [(r["step"], r["metrics"][metric]) for r in store.step_metrics(run["id"]) if metric in r["metrics"]]
        if points:
            curves[run["name"] or run["id"]] = points
    if not curves:
        raise EvsysError(f"no arm of '{experiment['name']}' recorded the step metric '{metric}'")
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, points in curves.items():
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name)
    ax.set(xlabel="step", ylabel=metric, title=experiment["name"])
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
