"""The seeded-default trap: is the ``llm`` proposer's early lead only the base recipe it proposes first?

Four searchers, 20 search seeds each, 50 candidates, one in flight, interleaved in one run, through the
real search (prompt, answer parsing, validation, journal, ledger, promotion; each arm is the objective):

- ``llm``: the ``llm`` proposer as shipped (the base recipe first, ``explore: 0.2``) asking ``advisor``, an
  inference client that reads only the prompt: it takes one of the best candidates listed there and
  perturbs it inside the bounds the prompt states (a Gaussian step of 10% of the range, in log space for
  log ranges; a choice switched now and then). A sensible, deliberately plain advisor: a language
  model's answers arrive through the same prompt and parser.
- ``llm, no default``: the same without the base recipe (``include_base: false``): what the model adds.
- ``random + default``: ``random`` with the base recipe first (its default).
- ``random``: ``random`` without it.

Two base recipes on the synthetic ``bowl`` (``evsys_sdk.testing.search``, 1 seed per candidate, noise
free): ``tuned`` (a hand-set recipe near the optimum, regret 0.46: better than random search finds in
20 candidates) and ``untuned`` (the synthetic algorithm's defaults, regret 10.1). Regret is that of the
best candidate so far after 1, 5, 10, 20 and 50 candidates.

The figure is llm's median regret at 50 over random + default's (< 1: the model adds to the default);
the details give every median, and llm - random + default as the mean per-seed difference with its 95% CI.
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import random
import re
import statistics
from typing import Any, ClassVar

from _bench import report
from _evolve import run_search, synthetic_objective
from pydantic import Field

from evsys_sdk.plugins.host import current_host
from evsys_sdk.plugins.registry import registry
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.testing import search as kit

SEEDS = range(20)
BUDGET = 50
AT = (1, 5, 10, 20, 50)
SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
    "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
}
BASES = {
    "tuned": {"x": 1.0, "learning_rate": 3e-4, "depth": 4, "activation": "gelu"},
    "untuned": {},  # the synthetic algorithm's defaults: x -2, learning rate 1e-5, depth 1, sigmoid
}
SEARCHERS: dict[str, dict[str, Any]] = {
    "llm": {"kind": "llm", "params": {"inference": {"kind": "advisor"}}},
    "llm, no default": {"kind": "llm", "params": {"inference": {"kind": "advisor"}, "include_base": False}},
    "random + default": {"kind": "random"},
    "random": {"kind": "random", "params": {"include_base": False}},
}

_AXIS = re.compile(r"^- (\S+): (uniform|log_uniform|int_uniform) in \[([^,]+), ([^\]]+)\]|^- (\S+): one of (\[.*?\]);")
_SCORED = re.compile(r"^- (\{.*\}): mean (\S+?)[,\s]")


class Advisor:
    """An inference client that proposes perturbations of the best candidates listed in the prompt.

    It knows nothing but the prompt: the axes and bounds from its space section, the candidates and
    their means from its history sections. Deterministic: its randomness is seeded by the prompt."""

    name: ClassVar[str] = "advisor"

    class Config(StrictModel):
        sigma: float = Field(default=0.1, gt=0, le=1, description="step, as a fraction of each range")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def generate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        rng = random.Random(hashlib.sha256(prompt.encode()).hexdigest())
        axes, scored = {}, []
        for line in prompt.splitlines():
            if m := _AXIS.match(line):
                if m.group(1):
                    axes[m.group(1)] = (m.group(2), float(m.group(3)), float(m.group(4)))
                else:
                    axes[m.group(5)] = ("choice", ast.literal_eval(m.group(6)))
            elif m := _SCORED.match(line):
                scored.append((float(m.group(2)), json.loads(m.group(1))))
        n = int(re.search(r"JSON list of (\d+) object", prompt).group(1))  # type: ignore[union-attr]
        if not scored:
            return "[]"
        maximize = "Objective: maximize" in prompt
        ranked = [p for _, p in sorted(scored, key=lambda t: t[0], reverse=maximize)]
        return json.dumps([self._step(rng.choice(ranked[:3]), axes, rng) for _ in range(n)])

    def _step(self, parent: dict[str, Any], axes: dict[str, tuple[Any, ...]], rng: random.Random) -> dict[str, Any]:
        child = dict(parent)
        moved = [p for p in axes if rng.random() < 0.5] or [rng.choice(list(axes))]
        for path in moved:
            kind, *spec = axes[path]
            if kind == "choice":
                child[path] = rng.choice(spec[0]) if rng.random() < 0.3 else child[path]
                continue
            low, high = spec
            log = kind == "log_uniform"
            lo, hi, at = (math.log(low), math.log(high), math.log(child[path])) if log else (low, high, child[path])
            value = min(hi, max(lo, rng.gauss(at, self.config.sigma * (hi - lo))))
            value = math.exp(value) if log else value
            child[path] = round(value) if kind == "int_uniform" else value
        return child


def config(base: dict[str, Any], proposer: dict[str, Any], seed: int) -> dict[str, Any]:
    cfg = kit.experiment("unused", {"proposer": proposer, "budget": {"candidates": BUDGET}, "seed": seed})
    cfg["run"]["algorithm"]["params"].update(base)
    cfg["search"]["space"] = SPACE
    return cfg


def curve(proposer: dict[str, Any], base: dict[str, Any], seed: int) -> list[float]:
    search = run_search(config(base, proposer, seed), synthetic_objective)
    scored = [c for c in search.state.candidates if c.mean is not None]
    out = []
    for k in AT:
        best = max(scored[:k], key=lambda c: c.mean or -math.inf)
        params = {
            **kit.SyntheticConfig(**base).model_dump(),
            **{p.rsplit(".", 1)[-1]: v for p, v in best.patch.items()},
        }
        out.append(kit.regret("bowl", params["x"], params["learning_rate"], params["depth"], params["activation"]))
    return out


def ci95(xs: list[float]) -> float:
    return 1.96 * statistics.stdev(xs) / math.sqrt(len(xs))


def main() -> None:
    current_host().add_plugin(kit, "search_kit")
    registry("inference_client").add(Advisor)
    details: dict[str, Any] = {}
    ratios = []
    for base_name, base in BASES.items():
        regrets: dict[str, list[list[float]]] = {s: [] for s in SEARCHERS}
        for seed in SEEDS:  # interleaved: machine drift hits every searcher alike
            for name, proposer in SEARCHERS.items():
                regrets[name].append(curve(proposer, base, seed))
        rows = []
        for i, k in enumerate(AT):
            med = {s: statistics.median(r[i] for r in regrets[s]) for s in SEARCHERS}
            diff = [a[i] - b[i] for a, b in zip(regrets["llm"], regrets["random + default"], strict=True)]
            rows.append(
                f"@{k}: median "
                + ", ".join(f"{s} {m:.3g}" for s, m in med.items())
                + f"; llm - random+default mean {statistics.mean(diff):+.3g} (95% CI +-{ci95(diff):.2g}, n={len(diff)})"
            )
        details[base_name] = " | ".join(rows)
        last = len(AT) - 1
        llm, seeded = (statistics.median(r[last] for r in regrets[s]) for s in ("llm", "random + default"))
        ratios.append(llm / seeded if seeded else math.inf)
    details["setup"] = f"{len(SEEDS)} search seeds x {BUDGET} candidates, 1 in flight, per base recipe and searcher"
    report("evolve_llm_vs_seeded_random_median_regret", max(ratios), "x random+default", "<", 1.0, details)


if __name__ == "__main__":
    main()
