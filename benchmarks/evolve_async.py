"""Asynchronous ASHA (places refilled as jobs end) beside generation-synchronous rungs, at parallel 4.

The search of ``evolve_fidelity.py`` with rungs (mock landscape, ``random`` proposer, rungs
``[10, 30, 90, 270]``, reduction 3, 150 candidates, parallel 4), twice per search seed, interleaved:

- ``async``: evsys's search as it is: the moment a job ends its place goes to a promotion or a new
  candidate;
- ``sync``: the same search code with a generation barrier (``_evolve.Synchronous``): no job starts
  until all four in flight have ended, as evsys searched before.

Arm durations are heterogeneous the way rungs make them: a job takes as long as the steps it runs (10 to
270), in virtual time, four places. The figure is the wall time ``sync`` needs to charge the compute
``async`` charges by the same point, as a ratio: at C = the smaller of the two searches' total charged
steps (per seed), sync's wall time to charge C over async's; mean over seeds with a 95% CI. Details: the
share of the places kept busy, each side's total charged steps and wall, and the regret each ends with.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from _bench import report
from _evolve import Synchronous
from evolve_fidelity import BEST, MockArms, _params, searched

from evsys_sdk.builtins.mock_landscape import skill_without_noise
from evsys_sdk.spec.config import ExperimentConfig, RunConfig
from evsys_sdk.spec.results import ArmResult

SEEDS = range(12)
PARALLEL = 4


class Timed(MockArms):
    """Records (wall time, charged steps so far) as each job ends."""

    def arms(self, cfg: ExperimentConfig, run: RunConfig, stop: int | None) -> list[ArmResult]:
        out = super().arms(cfg, run, stop)
        charged = (self.timeline[-1][1] if self.timeline else 0) + int(out[0].metrics["total_steps"])
        self.timeline.append((self.wall, charged))
        return out

    def run(self) -> Any:
        self.timeline: list[tuple[float, int]] = []
        return super().run()


class TimedSync(Synchronous, Timed):
    pass


def wall_to_charge(timeline: list[tuple[float, int]], steps: int) -> float:
    return next(wall for wall, charged in timeline if charged >= steps)


def final_regret(search: MockArms) -> float:
    best = search.state.best
    return BEST - skill_without_noise(_params(best.patch)) if best else BEST


def mean_ci(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), 1.96 * statistics.stdev(xs) / math.sqrt(len(xs))


def main() -> None:
    ratios: list[float] = []
    busy: dict[str, list[float]] = {"async": [], "sync": []}
    walls: dict[str, list[float]] = {"async": [], "sync": []}
    charged: dict[str, list[int]] = {"async": [], "sync": []}
    regrets: dict[str, list[float]] = {"async": [], "sync": []}
    for seed in SEEDS:  # interleaved
        runs: dict[str, Any] = {"async": searched(seed, True, Timed), "sync": searched(seed, True, TimedSync)}
        lines = {name: s.timeline for name, s in runs.items()}
        same = min(line[-1][1] for line in lines.values())
        ratios.append(wall_to_charge(lines["sync"], same) / wall_to_charge(lines["async"], same))
        for name, search in runs.items():
            wall, total = lines[name][-1]
            walls[name].append(wall)
            charged[name].append(total)
            busy[name].append(total / (PARALLEL * wall))
            regrets[name].append(final_regret(search))
    mean, half = mean_ci(ratios)
    details: dict[str, Any] = {
        "ratio": f"sync wall / async wall at the same charged steps: mean {mean:.2f} (95% CI +-{half:.2f}, "
        f"n={len(ratios)}), min {min(ratios):.2f}, max {max(ratios):.2f}"
    }
    for name in ("async", "sync"):
        b, bh = mean_ci(busy[name])
        r, rh = mean_ci(regrets[name])
        details[name] = (
            f"places busy {b:.1%} (+-{bh:.1%}); charged {statistics.mean(charged[name]):.0f} steps, wall "
            f"{statistics.mean(walls[name]):.0f} step-times; final regret {r:.4f} (+-{rh:.4f})"
        )
    details["setup"] = (
        f"{len(SEEDS)} search seeds; rungs [10, 30, 90, 270] reduction 3, 150 candidates, parallel {PARALLEL}; "
        "a job lasts as many step-times as the steps it runs"
    )
    report("evolve_async_wall_ratio", mean, "x less wall time", ">=", 1.5, details)


if __name__ == "__main__":
    main()
