"""``evsys evolve show NAME --plot FILE.png``: best-so-far against the spent budget, and the score against
each searched param (needs matplotlib: the plot extra)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from evsys_sdk.base.errors import EvsysError

if TYPE_CHECKING:
    from evsys_sdk.search.engine import SearchResult


def plot_search(result: SearchResult, output: str | Path, log_paths: set[str] | None = None) -> Path:
    """One PNG: best mean so far against cumulative arm seconds (candidates in order), then one scatter of
    score against value per searched path (log x for ``log_paths``, categories in order of appearance)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from evsys_sdk.base.install_hints import pip_install

        raise EvsysError(f"plotting needs matplotlib: {pip_install('evsys-core[plot]')}") from None
    scored = [c for c in result.candidates if c.mean is not None]
    if not scored:
        raise EvsysError(f"search '{result.name}' has no scored candidate to plot yet")
    maximize = result.direction == "maximize"
    paths = list(dict.fromkeys(p for c in result.candidates for p in c.patch))
    fig, axes = plt.subplots(1, 1 + len(paths), figsize=(4.5 * (1 + len(paths)), 4), squeeze=False)
    spent, best, xs, ys = 0.0, None, [], []
    for c in result.candidates:
        spent += c.seconds
        if c.mean is not None and (best is None or (c.mean > best if maximize else c.mean < best)):
            best = c.mean
        if best is not None:
            xs.append(spent)
            ys.append(best)
    ax = axes[0][0]
    ax.step(xs, ys, where="post", marker="o", markersize=3)
    ax.set_xlabel("spent arm seconds")
    ax.set_ylabel(f"best {result.metric} so far")
    ax.set_title(result.name)
    for ax, path in zip(axes[0][1:], paths, strict=True):
        points = [(c.patch[path], c.mean) for c in scored if path in c.patch]
        values = [v for v, _ in points]
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            ax.scatter(values, [m for _, m in points], s=14)
            if log_paths and path in log_paths:
                ax.set_xscale("log")
        else:
            labels = list(dict.fromkeys(repr(v) for v in values))
            ax.scatter([labels.index(repr(v)) for v in values], [m for _, m in points], s=14)
            ax.set_xticks(range(len(labels)), labels, rotation=30)
        ax.set_xlabel(path)
        ax.set_ylabel(result.metric)
    fig.tight_layout()
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out)  # atomic: a reader never sees half a PNG
    return out
