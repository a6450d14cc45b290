"""Search quality: median regret of ``mutate`` vs ``random`` at equal budget over many search seeds.

Three landscapes with known optima, each searched 20 times (search seeds 0..19) by both proposers with
the same budget (30 candidates, 4 in flight) through the real search (proposals, validation, journal,
ledger, promotion); each arm is the objective itself, the function a mock arm computes:

- ``mock``: the mock backend's landscape (``evsys_sdk.builtins.mock_landscape``) over learning rate
  (log), LoRA rank (choice) and epochs (int), 2 seeds per candidate; regret = best skill - the best
  candidate's noise-free skill.
- ``bowl``: ``evsys_sdk.testing.search`` bowl (x, log learning rate, int depth, activation), 1 seed.
- ``ridge+noise``: its curved valley with a decoy plateau and seed noise of sd 0.5 (the size of the
  effects of depth and activation), 3 seeds per candidate, paired promotion.

The figure is the worst ratio of mutate's mean regret to random's (< 1: mutate wins everywhere), each with
the paired per-seed difference and its 95% CI. 20 seeds were too few: a 20-seed median swung by 1.4x
between two runs of random search alone, whose proposals do not depend on the scores.
"""

from __future__ import annotations

import statistics
from typing import Any

from _bench import report
from _evolve import mock_objective, run_search, synthetic_objective

from evsys_sdk.base.stats import paired
from evsys_sdk.builtins.mock_landscape import skill_without_noise
from evsys_sdk.plugins.host import current_host
from evsys_sdk.testing import search as kit

SEEDS = range(200)
BUDGET = 30


def config(
    algorithm: dict[str, Any], space: dict[str, Any], proposer: str, seed: int, n_repeats: int, rule: str = "mean"
) -> dict[str, Any]:
    return {
        "name": "quality",
        "n_repeats": n_repeats,
        "base_seed": 100,
        "metadata": {"success_metric": "score"},
        "run": {
            "name": "r",
            "data": {"source_kind": "in_memory", "rows": [{"q": 1}]},
            "model": {"name": "none"},
            "backend": {"kind": "mock"},
            "algorithm": algorithm,
        },
        "search": {
            "proposer": {"kind": proposer},
            "budget": {"candidates": BUDGET},
            "parallel": 4,
            "seed": seed,
            "space": space,
            "promotion": {"rule": rule},
        },
    }


MOCK_SPACE = {
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
    "algorithm.params.lora_rank": {"choice": [4, 8, 16, 32]},
    "algorithm.params.num_epochs": {"int_uniform": [1, 4]},
}
SYN_SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
    "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
}
MOCK_BEST = skill_without_noise({"learning_rate": 3e-4, "lora_rank": 32, "num_epochs": 4})


def _params(patch: dict[str, Any]) -> dict[str, Any]:
    return {k.rsplit(".", 1)[-1]: v for k, v in patch.items()}


LANDSCAPES: dict[str, dict[str, Any]] = {
    "mock": {
        "algorithm": {"kind": "sft", "params": {"num_epochs": 1, "lora_rank": 4, "learning_rate": 1e-5}},
        "space": MOCK_SPACE,
        "objective": mock_objective,
        "n_repeats": 2,
        "regret": lambda patch: MOCK_BEST - skill_without_noise(_params(patch)),
    },
    "bowl": {
        "algorithm": {"kind": "synthetic", "params": {"objective": "bowl"}},
        "space": SYN_SPACE,
        "objective": synthetic_objective,
        "n_repeats": 1,
        "regret": lambda patch: kit.regret("bowl", **_params(patch)),
    },
    "ridge+noise": {
        "algorithm": {"kind": "synthetic", "params": {"objective": "ridge", "noise": 0.5}},
        "space": SYN_SPACE,
        "objective": synthetic_objective,
        "n_repeats": 3,
        "rule": "paired",
        "regret": lambda patch: kit.regret("ridge", **_params(patch)),
    },
}


def main() -> None:
    current_host().add_plugin(kit, "search_kit")
    details: dict[str, Any] = {}
    ratios = []
    for name, land in LANDSCAPES.items():
        regrets: dict[str, list[float]] = {"random": [], "mutate": []}
        for seed in SEEDS:  # interleaved: machine drift hits both proposers alike
            for proposer in regrets:
                cfg = config(
                    land["algorithm"], land["space"], proposer, seed, land["n_repeats"], land.get("rule", "mean")
                )
                best = run_search(cfg, land["objective"]).state.best
                assert best is not None
                regrets[proposer].append(land["regret"](best.patch))
        mean = {k: statistics.fmean(v) for k, v in regrets.items()}
        med = {k: statistics.median(v) for k, v in regrets.items()}
        diff = paired(regrets["mutate"], regrets["random"])
        assert diff is not None
        ratio = mean["mutate"] / mean["random"] if mean["random"] else float("inf")
        ratios.append(ratio)
        details[name] = (
            f"mean regret mutate {mean['mutate']:.4g} vs random {mean['random']:.4g}, ratio {ratio:.2f}; "
            f"paired difference {diff.diff:+.3g} (95% CI [{diff.ci95_low:.3g}, {diff.ci95_high:.3g}], "
            f"n={len(SEEDS)}); medians {med['mutate']:.4g} vs {med['random']:.4g}; mutate better on "
            f"{sum(m < r for m, r in zip(regrets['mutate'], regrets['random'], strict=True))}/{len(SEEDS)} seeds"
        )
    details["setup"] = f"{len(SEEDS)} search seeds x {BUDGET} candidates, parallel 4, per landscape and proposer"
    report("evolve_mutate_vs_random_regret", max(ratios), "x random", "<", 1.0, details)


if __name__ == "__main__":
    main()
