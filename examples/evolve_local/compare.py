"""The best recipe a finished ``evsys evolve examples/evolve_local/config.yaml`` found, against the
hand-set recipe (the search's base candidate), on the same seeds: validation (which selected) and
held-out exact match per seed with mean and 95% CI, the paired held-out difference, and each arm's wall
time (train + eval). Run from the directory the search ran in (its output_dir is relative):

    python examples/evolve_local/compare.py [SEARCH_NAME_OR_ID]     # default: local_tiny_evolve
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from evsys_sdk import open_store
from evsys_sdk.base.stats import summarize
from evsys_sdk.search.engine import read_search


def _arms(arms_dir: Path, cid: str) -> list[dict[str, Any]]:
    """The candidate's arms: ``<id>__s<seed>/`` with repeats, ``<id>/`` with one seed."""
    paths = sorted(arms_dir.glob(f"{cid}__s*/arm_result.json")) or [arms_dir / cid / "arm_result.json"]
    return [json.loads(p.read_text())["arm"] for p in paths]


def _score(arm: dict[str, Any], bench: str) -> float:
    return float(next(e for e in arm["evals"] if e["name"] == bench)["metrics"]["pass_rate"])


def _summary(values: list[float]) -> str:
    s = summarize(values)
    return f"{s.mean:.3f} [{s.ci95_low:.3f}, {s.ci95_high:.3f}] (n={s.n}: {', '.join(f'{v:.2f}' for v in values)})"


def main(name: str) -> int:
    found = read_search(open_store(), name)
    if found is None:
        print(f"no search named '{name}': run `evsys evolve examples/evolve_local/config.yaml` first", file=sys.stderr)
        return 1
    cfg, state, experiment_id = found
    arms_dir = Path(cfg.output_dir).expanduser() / f"search-{experiment_id[:8]}"
    base = next(c for c in state.candidates if c.operator == "base")
    best = state.best
    if best is None:
        print("the search has no scored candidate", file=sys.stderr)
        return 1
    rows = {"hand-set": (base, _arms(arms_dir, base.id)), "best found": (best, _arms(arms_dir, best.id))}
    for label, (c, arms) in rows.items():
        patch = ", ".join(f"{k.rsplit('.', 1)[-1]}={v:.3g}" for k, v in c.patch.items())
        walls = [a["train_seconds"] + a["eval_seconds"] for a in arms]
        print(f"{label} ({c.id}: {patch})")
        print(f"  val exact match      {_summary([_score(a, 'val') for a in arms])}")
        print(f"  held-out exact match {_summary([_score(a, 'heldout') for a in arms])}")
        print(f"  wall per arm (train + eval) {', '.join(f'{w:.0f} s' for w in walls)}")
    base_arms, best_arms = rows["hand-set"][1], rows["best found"][1]
    if best.id != base.id:
        diff = [_score(b, "heldout") - _score(a, "heldout") for a, b in zip(base_arms, best_arms, strict=True)]
        print(f"held-out, best - hand-set on the same seeds: {_summary(diff)}")
    total = sum(c.seconds for c in state.candidates)
    print(f"search: {len(state.candidates)} candidates, {total:.0f} arm seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "local_tiny_evolve"))
