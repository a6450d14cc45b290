"""Does `num_processes: 2` learn what one process learns? examples/local_tiny's recipe (300 SFT steps, batch 32)
at backend num_processes 1 and 2 (gloo on CPU), for each seed, through `Experiment` as `evsys run` runs it.

Reports the held-out exact match (`heldout` pass rate) of every run, the mean and 95% CI per process count
over the seeds, the paired difference (2 - 1) with its CI, and how the two runs' per-step losses compare (logged
every step): the largest relative gap over the first 20 steps (float summation order alone separates them;
later the trajectories drift apart as any two float orders do) and the mean loss of the last 50 steps of each.
Passes when the difference's CI holds 0 or its mean is within 0.05.

    python examples/local_tiny/make_data.py    # once
    OMP_NUM_THREADS=1 python benchmarks/local_dist_parity.py [--seeds 0,1,2] [--steps 300]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "examples" / "local_tiny" / "config.yaml"


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% CI (t distribution; 0 with one value)."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, 0.0
    t = {2: 12.71, 3: 4.30, 4: 3.18, 5: 2.78, 6: 2.57, 7: 2.45, 8: 2.36, 9: 2.31, 10: 2.26}.get(len(values), 2.0)
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


def train(seed: int, n: int, steps: int, out: Path) -> tuple[float, dict[int, float]]:
    """Held-out exact match and per-step loss of the recipe at ``seed`` on ``n`` processes."""
    from evsys_sdk.orchestration.experiment import Experiment
    from evsys_sdk.spec.config import ExperimentConfig

    raw: dict[str, Any] = yaml.safe_load(RECIPE.read_text())
    raw["output_dir"] = str(out)
    raw["metadata"]["benchmark"] = [b for b in raw["metadata"]["benchmark"] if b["name"] == "heldout"]
    raw["metadata"]["benchmark"][0].pop("models", None)  # the untrained baseline is the same for every run
    raw["run"]["seed"] = seed
    raw["run"]["algorithm"]["params"]["max_steps"] = steps
    raw["run"]["algorithm"]["params"]["logging_steps"] = 1
    raw["run"]["backend"]["params"]["num_processes"] = n
    [arm] = Experiment(ExperimentConfig.model_validate(raw)).run().arms
    if arm.status != "completed":
        sys.exit(f"seed {seed}, {n} process(es): {arm.error}")
    [heldout] = [e for e in arm.evals if e.name == "heldout"]
    lines = (out / raw["run"]["name"] / "logs" / "metrics.jsonl").read_text().splitlines()
    losses = {r["step"]: r["metrics"]["train/loss"] for r in map(json.loads, lines) if "train/loss" in r["metrics"]}
    return float(heldout.metrics["pass_rate"]), losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=300)
    a = parser.parse_args()
    if not (REPO / "examples" / "local_tiny" / "model").is_dir():
        sys.exit("run python examples/local_tiny/make_data.py first (it writes the data, benchmarks and model)")
    os.chdir(REPO)  # the recipe's paths are relative to the repository root
    seeds = [int(s) for s in a.seeds.split(",")]
    scores: dict[int, list[float]] = {1: [], 2: []}
    early, tails = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            runs = {n: train(seed, n, a.steps, Path(tmp) / f"s{seed}_n{n}") for n in (1, 2)}
            for n, (score, _) in runs.items():
                scores[n].append(score)
            one, two = runs[1][1], runs[2][1]
            gap = max(abs(two[s] - one[s]) / abs(one[s]) for s in sorted(one)[:20])
            early.append(gap)
            tail = [round(statistics.fmean(x[s] for s in sorted(x)[-50:]), 5) for x in (one, two)]
            tails.append(tail)
            print(
                f"  seed {seed}: heldout {runs[1][0]:.3f} (1 process) {runs[2][0]:.3f} (2 processes); loss gap over "
                f"the first 20 steps {gap:.1e}; last-50-step mean loss {tail[0]:.4f} vs {tail[1]:.4f}",
                file=sys.stderr,
            )
    diff, diff_ci = mean_ci([b - a for a, b in zip(scores[1], scores[2], strict=True)])
    summary = {
        n: {"mean": round(mean_ci(v)[0], 4), "ci95": round(mean_ci(v)[1], 4), "n": len(v), "runs": v}
        for n, v in scores.items()
    }
    passed = abs(diff) <= diff_ci or abs(diff) <= 0.05
    print(
        json.dumps(
            {
                "name": "local_dist_parity",
                "heldout_exact_match": summary,
                "difference_2_minus_1": {"mean": round(diff, 4), "ci95": round(diff_ci, 4)},
                "max_relative_loss_gap_first_20_steps": max(early),
                "last_50_steps_mean_loss_1_vs_2": tails,
                "steps": a.steps,
                "pass": passed,
            }
        )
    )
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
