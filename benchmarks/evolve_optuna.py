"""Search quality of evsys-optuna's ``tpe``, ``cmaes`` and ``gp`` beside Optuna used directly, ``mutate``
and ``random``.

Each landscape is searched 20 times (search seeds 0..19) by six searchers with 100 candidates, one in
flight: evsys ``tpe`` (the real search: proposals, validation, journal, ledger, promotion; each arm is the
objective itself), Optuna's own ``study.optimize`` with the same ``TPESampler`` settings and the base run
enqueued first (as evsys proposes it first), evsys ``cmaes`` and ``gp`` (Optuna's defaults; ``gp`` to 50
candidates: it refits its Gaussian process per ask, ~80 s for 100 on this machine), evsys ``mutate`` and
evsys ``random``. The regret at 20, 50
and 100 candidates is that of the best candidate so far by its observed mean (what the search would
report), scored without noise. Landscapes (``evsys_sdk.testing.search``): ``bowl`` (1 seed per
candidate) and ``ridge+noise`` (seed noise of sd 0.5, 3 seeds per candidate, the mean told).

The figure is evsys tpe's median regret at 100 over Optuna's own (~1: a match); the details give every
median, the mean difference tpe - optuna with its 95% CI, and the ratio of the best evsys proposer to random.
Needs ``pip install "./packages/evsys-optuna[cmaes,gp]" torch==2.13.0``.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import statistics
import warnings
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _bench import report
from _evolve import run_search, synthetic_objective

from evsys_sdk.plugins.host import current_host
from evsys_sdk.testing import search as kit

SEEDS = range(20)
BUDGET = 100
AT = (20, 50, 100)
BUDGETS = {"gp": 50}  # searchers stopped early (their later columns are left empty)
SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
    "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
}
LANDSCAPES = {"bowl": {"objective": "bowl", "n_repeats": 1}, "ridge+noise": {"objective": "ridge", "n_repeats": 3}}
BASE_SEED = 100


def config(land: dict[str, Any], proposer: str, seed: int, budget: int) -> dict[str, Any]:
    params: dict[str, Any] = {"objective": land["objective"]}
    if land["n_repeats"] > 1:
        params["noise"] = 0.5
    return {
        "name": "optuna-bench",
        "n_repeats": land["n_repeats"],
        "base_seed": BASE_SEED,
        "metadata": {"success_metric": "score"},
        "run": {
            "name": "r",
            "data": {"source_kind": "in_memory", "rows": [{"q": 1}]},
            "model": {"name": "none"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "synthetic", "params": params},
        },
        "search": {"proposer": {"kind": proposer}, "budget": {"candidates": budget}, "parallel": 1, "seed": seed},
    }


def _params(patch: dict[str, Any]) -> dict[str, Any]:
    return {k.rsplit(".", 1)[-1]: v for k, v in patch.items()}


def curve(land: dict[str, Any], trials: list[tuple[dict[str, Any], float]], budget: int = BUDGET) -> list[float]:
    """Regret (noise-free) of the best-by-observed-mean candidate after 20, 50 and 100 candidates (up to
    ``budget``); a search that ended sooner (its proposer found nothing new) keeps its best."""
    out = []
    for k in (k for k in AT if k <= budget):
        best = max(trials[:k], key=lambda t: t[1])
        out.append(kit.regret(land["objective"], **{**kit.OPTIMUM, **_params(best[0])}))
    return out


def evsys_curve(land: dict[str, Any], proposer: str, seed: int) -> list[float]:
    budget = BUDGETS.get(proposer, BUDGET)
    cfg = config(land, proposer, seed, budget)
    cfg["search"]["space"] = SPACE
    search = run_search(cfg, synthetic_objective)
    scored = [(c.patch, c.mean) for c in search.state.candidates if c.mean is not None]
    return curve(land, [(p, float(m)) for p, m in scored], budget)


def optuna_curve(land: dict[str, Any], seed: int) -> list[float]:
    """Optuna's own loop: the same objective (mean over the same seeds), sampler settings and first trial."""
    import optuna

    base = {"objective": land["objective"], **({"noise": 0.5} if land["n_repeats"] > 1 else {})}
    seeds = [BASE_SEED + i for i in range(land["n_repeats"])]
    default = kit.SyntheticConfig(**base)
    choices = ["relu", "gelu", "tanh", "sigmoid"]

    def objective(trial: optuna.Trial) -> float:
        params = {
            "x": trial.suggest_float("x", -5, 5),
            "learning_rate": trial.suggest_float("learning_rate", 1e-5, 1e-1, log=True),
            "depth": trial.suggest_int("depth", 1, 12),
            "activation": choices[trial.suggest_categorical("activation", range(4))],
        }
        trial.set_user_attr("patch", params)
        return statistics.mean(kit.score(kit.SyntheticConfig(**base, **params, seed=s)) for s in seeds)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, n_ei_candidates=24, multivariate=True, group=True, constant_liar=True
        )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(
        {
            "x": default.x,
            "learning_rate": default.learning_rate,
            "depth": default.depth,
            "activation": choices.index(default.activation),
        }
    )
    study.optimize(objective, n_trials=BUDGET)
    return curve(land, [(t.user_attrs["patch"], float(t.value)) for t in study.trials if t.value is not None])


def ci95(xs: list[float]) -> float:
    return 1.96 * statistics.stdev(xs) / math.sqrt(len(xs))


def _job(job: tuple[str, str, int]) -> list[float]:
    name, searcher, seed = job
    land = LANDSCAPES[name]
    return optuna_curve(land, seed) if searcher == "optuna" else evsys_curve(land, searcher, seed)


def main() -> None:
    current_host().add_plugin(kit, "search_kit")  # tpe comes from the installed evsys-optuna's entry point
    searchers = ("tpe", "optuna", "cmaes", "gp", "mutate", "random")
    details: dict[str, Any] = {}
    ratios = []
    # Every search is seeded, so its regrets are the same whichever process runs it and when: a pool of
    # one process per core (forked after the plugin host is set up).
    jobs = [(name, s, seed) for name in LANDSCAPES for seed in SEEDS for s in searchers]
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("fork")) as pool:
        curves = dict(zip(jobs, pool.map(_job, jobs), strict=True))
    for name in LANDSCAPES:
        regrets = {s: [curves[(name, s, seed)] for seed in SEEDS] for s in searchers}
        rows = []
        for i, k in enumerate(AT):
            med = {s: statistics.median(r[i] for r in regrets[s]) for s in searchers if len(regrets[s][0]) > i}
            diff = [a[i] - b[i] for a, b in zip(regrets["tpe"], regrets["optuna"], strict=True)]
            best = min((s for s in med if s not in ("optuna", "random")), key=lambda s: med[s])
            rows.append(
                f"@{k}: median "
                + ", ".join(f"{s} {m:.3g}" for s, m in med.items())
                + f"; tpe-optuna mean {statistics.mean(diff):+.3g} (95% CI +-{ci95(diff):.2g}, n={len(diff)}); "
                f"best evsys ({best}) / random {med[best] / med['random']:.2f}"
            )
        details[name] = " | ".join(rows)
        last = len(AT) - 1
        tpe100 = statistics.median(r[last] for r in regrets["tpe"])
        opt100 = statistics.median(r[last] for r in regrets["optuna"])
        ratios.append(tpe100 / opt100 if opt100 else float("inf"))
    details["setup"] = (
        f"{len(SEEDS)} search seeds x {BUDGET} candidates (gp {BUDGETS['gp']}), 1 in flight, per landscape and searcher"
    )
    report("evolve_tpe_vs_optuna_median_regret", max(ratios), "x optuna", "<", 1.5, details)


if __name__ == "__main__":
    main()
