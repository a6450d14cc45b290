"""Multi-fidelity rungs (``search.fidelity``, ASHA) beside full-fidelity random search, on the mock landscape.

The space is the mock backend's landscape (``evsys_sdk.builtins.mock_landscape``: learning rate, LoRA
rank, epochs) for an SFT run of ``STEPS`` steps, scored live every ``RUN_EVERY`` steps on ``ROWS``
validation rows (``evsys_sdk.testing.search.landscape_experiment``); the objective is ``val.pass_rate``,
one seed per candidate. Two searches per search seed, interleaved, both through the real search
(proposals, validation, journal, ledger, ASHA, promotion) with the ``random`` proposer:

- ``random``: every candidate trains the whole run (``FULL_CANDIDATES`` of them);
- ``rungs``: ``search.fidelity: {rungs: RUNGS, reduction: 3}``, ``RUNGS_CANDIDATES`` candidates.

Each arm is what the mock arm computes, without its file and process overhead: the mock model recalls a
row once the training progress (step / steps) passes the row's draw / skill, so its live pass rate at a
step is computed from the landscape directly; an arm stopped at its rung reports its live scores up to
the rung and the steps it ran. Before measuring, the script checks that this equals real mock arms
through ``Experiment`` (one stopped at a rung, one whole run).

Charged compute is the ledger's ``spent.train_steps`` as it grows, each job charged as it ends (jobs end
in virtual time, each taking as long as the steps it runs, ``search.parallel`` of them in flight).
Regret is the optimum's noise-free skill minus the noise-free skill of the best candidate scored on the
whole run so far (by its observed score, as the search picks). The figure is
how many times less charged compute ``rungs`` needs for its median regret to reach random search's at
its whole budget; the details give both curves (median with a bootstrap 95% CI) and the paired mean
difference at that point.
"""

from __future__ import annotations

import math
import random
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _bench import report
from _evolve import InstantSearch

from evsys_sdk.builtins.mock_landscape import landscape, skill_without_noise
from evsys_sdk.spec.config import ExperimentConfig, RunConfig
from evsys_sdk.spec.results import ArmResult, EvalResult
from evsys_sdk.testing.search import landscape_experiment
from evsys_sdk.tracking.store import LocalStore

SEEDS = range(30)
STEPS, RUN_EVERY, ROWS = 270, 10, 300
RUNGS = [10, 30, 90, 270]
FULL_CANDIDATES, RUNGS_CANDIDATES, PARALLEL = 30, 150, 4
SPACE = {
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
    "algorithm.params.lora_rank": {"choice": [4, 8, 16, 32]},
    "algorithm.params.num_epochs": {"int_uniform": [1, 4]},
}
BEST = skill_without_noise({"learning_rate": 3e-4, "lora_rank": 32, "num_epochs": 4})
PROMPTS = [f"q{i}" for i in range(ROWS)]


def live_scores(params: dict[str, Any], seed: int, until: int) -> dict[int, float]:
    """The mock arm's ``val`` pass rate at every ``RUN_EVERY`` step up to ``until`` (as ``MockMemory``)."""
    chance = max(landscape(params, seed), 1e-9)
    when = [random.Random(f"{seed}:{p}").random() / chance for p in PROMPTS]
    total = params["max_steps"]
    return {s: sum(w <= s / total for w in when) / ROWS for s in range(RUN_EVERY, until + 1, RUN_EVERY)}


class MockArms(InstantSearch):
    """Each arm is computed from the landscape: stopped at its rung, or the whole run; a job takes as
    long as the steps it runs."""

    def duration(self, run: RunConfig, stop: int | None) -> float:
        return float(stop or run.algorithm.params["max_steps"])

    def arms(self, cfg: ExperimentConfig, run: RunConfig, stop: int | None) -> list[ArmResult]:
        seed = run.seed  # one seed per candidate: the arm keeps the run's own, as Experiment does
        params = {**run.algorithm.params, "seed": seed}
        ran = stop or params["max_steps"]
        evals = [EvalResult("val", None, {"pass_rate": v}, step=s) for s, v in live_scores(params, seed, ran).items()]
        arm = ArmResult(
            name=run.name,
            run_config=run,
            status="stopped" if stop else "completed",
            metrics={"total_steps": float(ran)},
            evals=evals,
            train_seconds=0.0,
            error=f"stopped at rung {stop}" if stop else None,
        )
        return [arm]


def config(folder: Path, seed: int, rungs: bool) -> dict[str, Any]:
    block: dict[str, Any] = {
        "proposer": {"kind": "random"},
        "budget": {"candidates": RUNGS_CANDIDATES if rungs else FULL_CANDIDATES},
        "parallel": PARALLEL,
        "seed": seed,
        "space": SPACE,
        **({"fidelity": {"rungs": RUNGS, "reduction": 3}} if rungs else {}),
    }
    return landscape_experiment(folder, block, steps=STEPS, run_every=RUN_EVERY, n_rows=ROWS)


def searched(seed: int, rungs: bool, cls: type[MockArms] = MockArms) -> MockArms:
    """One search run to its end (its journal and virtual wall time kept)."""
    with tempfile.TemporaryDirectory() as tmp:
        search = cls(
            ExperimentConfig.model_validate(config(Path(tmp), seed, rungs)), store=LocalStore(Path(tmp) / "db")
        )
        search.run()
    return search


def curve(search: MockArms) -> list[tuple[int, float]]:
    """(charged steps, regret of the best whole-run candidate so far), one point per job as it ends."""
    patches = {c.id: c.patch for c in search.state.candidates}
    steps, best, out = 0, None, []
    for kind, event in search.journal.events:
        if kind == "scored":
            steps += sum(a["train_steps"] for a in event["cost"])
            if event["status"] == "scored" and (best is None or event["scores"][0] > best[0]):
                best = (event["scores"][0], event["id"])
            out.append((steps, BEST - skill_without_noise(_params(patches[best[1]])) if best else BEST))
    return out


def _params(patch: dict[str, Any]) -> dict[str, Any]:
    return {k.rsplit(".", 1)[-1]: v for k, v in patch.items()}


def at(points: list[tuple[int, float]], budget: int) -> float:
    """The regret once no more than ``budget`` steps are charged."""
    return min((r for s, r in points if s <= budget), default=BEST)


def median_ci(xs: list[float], reps: int = 2000) -> tuple[float, float, float]:
    rng = random.Random(0)
    meds = sorted(statistics.median(rng.choices(xs, k=len(xs))) for _ in range(reps))
    return statistics.median(xs), meds[int(0.025 * reps)], meds[int(0.975 * reps) - 1]


def mean_ci(xs: list[float]) -> tuple[float, float]:
    return statistics.mean(xs), 1.96 * statistics.stdev(xs) / math.sqrt(len(xs))


def check_against_real_arms() -> None:
    """The computed arms equal real mock arms through Experiment (a smaller set-up, same code path)."""
    from evsys_sdk.loading.yaml_loader import load_yaml
    from evsys_sdk.orchestration.experiment import Experiment

    params = {"learning_rate": 3e-4, "lora_rank": 16, "num_epochs": 2}
    with tempfile.TemporaryDirectory() as tmp:
        raw = config(Path(tmp), 0, False)
        raw.pop("search")
        raw["run"]["algorithm"]["params"].update(params)
        cfg = load_yaml(raw)
        (full,) = Experiment(cfg).run().arms
        (stopped,) = Experiment(cfg.model_copy(update={"output_dir": f"{tmp}/b"}), stop_at={"sft": RUNGS[1]}).run().arms
    seed = full.run_config.seed
    mine = live_scores({**params, "max_steps": STEPS, "seed": seed}, seed, STEPS)
    assert {e.step: e.metrics["pass_rate"] for e in full.evals} == mine, "computed arms differ from mock arms"
    assert stopped.status == "stopped" and stopped.metrics["total_steps"] == RUNGS[1]
    assert {e.step: e.metrics["pass_rate"] for e in stopped.evals} == {s: v for s, v in mine.items() if s <= RUNGS[1]}


def main() -> None:
    check_against_real_arms()
    curves: dict[str, list[list[tuple[int, float]]]] = {"random": [], "rungs": []}
    for seed in SEEDS:  # interleaved: machine drift hits both alike
        curves["random"].append(curve(searched(seed, False)))
        curves["rungs"].append(curve(searched(seed, True)))
    full_budget = FULL_CANDIDATES * STEPS
    target = statistics.median(at(c, full_budget) for c in curves["random"])
    grid = range(STEPS, full_budget + 1, STEPS)
    reach = next((b for b in grid if statistics.median(at(c, b) for c in curves["rungs"]) <= target), None)
    ratio = full_budget / reach if reach else 0.0
    rows = []
    for budget in sorted({full_budget // 6, full_budget // 4, full_budget // 3, full_budget // 2, full_budget}):
        cells = []
        for name in ("random", "rungs"):
            med, low, high = median_ci([at(c, budget) for c in curves[name]])
            cells.append(f"{name} {med:.4f} [{low:.4f}, {high:.4f}]")
        rows.append(f"@{budget} steps: " + ", ".join(cells))
    details: dict[str, Any] = {"median regret (95% bootstrap CI)": " | ".join(rows)}
    if reach:
        diff = [at(r, reach) - at(f, full_budget) for r, f in zip(curves["rungs"], curves["random"], strict=True)]
        mean, half = mean_ci(diff)
        details["paired"] = (
            f"rungs @{reach} minus random @{full_budget}: mean {mean:+.4f} (95% CI +-{half:.4f}, n={len(diff)}); "
            f"rungs better or equal on {sum(d <= 0 for d in diff)}/{len(diff)} seeds"
        )
    mean_target = statistics.mean(at(c, full_budget) for c in curves["random"])
    by_mean = next((b for b in grid if statistics.mean(at(c, b) for c in curves["rungs"]) <= mean_target), None)
    details["by the mean"] = f"random's mean regret at {full_budget} steps {mean_target:.4f}; rungs reach it at " + (
        f"{by_mean} steps ({full_budget / by_mean:.2f}x less)" if by_mean else "no budget up to it"
    )
    spent = [c[-1][0] for c in curves["rungs"]]
    details["setup"] = (
        f"{len(SEEDS)} search seeds; random {FULL_CANDIDATES} candidates x {STEPS} steps = {full_budget}; rungs "
        f"{RUNGS} reduction 3, {RUNGS_CANDIDATES} candidates, spent {min(spent)}-{max(spent)} steps; parallel "
        f"{PARALLEL}; {ROWS} validation rows every {RUN_EVERY} steps; random's median regret {target:.4f}"
    )
    report("evolve_rungs_compute_to_random_regret", ratio, "x less compute", ">=", 3.0, details)


if __name__ == "__main__":
    main()
