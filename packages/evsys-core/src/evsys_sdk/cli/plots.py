"""``evsys runs plot``: one curve per arm of a recorded step metric (needs matplotlib: the plot extra).

A multi-phase arm (``combo``) is one continuous curve on its global step, its phase starts marked by
dotted vertical lines; each arm has its own marker and line style so overlapping curves stay apart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.phases import phase_starts

_STYLES = ("-", "--", "-.", ":")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def plot_metric(store: Any, experiment: dict[str, Any], metric: str, output: str | Path) -> Path:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from evsys_sdk.base.install_hints import pip_install

        raise EvsysError(f"plotting needs matplotlib: {pip_install('evsys-core[plot]')}") from None
    curves = {}
    for run in store.experiment_runs(experiment["id"]):
        rows = store.step_metrics(run["id"])
        points = [(r["step"], r["metrics"][metric]) for r in rows if metric in r["metrics"]]
        if points:
            curves[run["name"] or run["id"]] = (points, phase_starts((r["step"], r["metrics"]) for r in rows))
    if not curves:
        raise EvsysError(f"no arm of '{experiment['name']}' recorded the step metric '{metric}'")
    fig, ax = plt.subplots(figsize=(8, 5))
    for i, (name, (points, starts)) in enumerate(curves.items()):
        (line,) = ax.plot(
            [p[0] for p in points],
            [p[1] for p in points],
            label=name,
            linestyle=_STYLES[i % len(_STYLES)],
            marker=_MARKERS[i % len(_MARKERS)],
            markevery=max(1, len(points) // 10),
            markersize=4,
        )
        for step, phase in starts:
            ax.axvline(step - 0.5, color=line.get_color(), linestyle=":", linewidth=1)
            ax.annotate(f"phase {phase}", (step - 0.5, 1), xycoords=("data", "axes fraction"), fontsize="x-small")
    ax.set(xlabel="step", ylabel=metric, title=experiment["name"])
    ax.legend(fontsize="small")
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
