"""``tpe`` through the real optuna: the space's translation (log, int, categorical, an algorithm.kind
switch as a conditional subtree), learning on the bowl, constant-liar generations, exact resume."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest
from conftest import search_config

from evsys_sdk.search import evolve
from evsys_sdk.search.engine import Candidate
from evsys_sdk.search.space import build_space
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.testing.search import crashed_copies
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(240)


def _proposer(tmp_path: Path, **search: Any) -> Any:
    from evsys_optuna.proposers import TPEProposer

    cfg = ExperimentConfig.model_validate(search_config(tmp_path, **search))
    assert cfg.search is not None and cfg.run is not None
    space, problems = build_space(cfg.search, cfg.run)
    assert space is not None, problems
    proposer = TPEProposer(**cfg.search.proposer.params)
    proposer.setup(space, maximize=True)
    return proposer


def _told(cid: str, patch: dict[str, Any], mean: float | None) -> Candidate:
    """A candidate as the search tells it: scored with ``mean``, or failed (None)."""
    c = Candidate(cid, [], "tpe", patch, None)  # type: ignore[arg-type]  # the proposer reads no run config
    c.status, c.mean, c.scores = ("failed", None, []) if mean is None else ("scored", mean, [mean])
    return c


def test_proposals_stay_in_the_space_with_each_axis_typed(tmp_path: Path, host: Any) -> None:
    proposer = _proposer(tmp_path, proposer={"kind": "tpe", "params": {"include_base": False}})
    proposals = proposer.ask([], 30)
    for p in proposals:
        assert -5 <= p.patch["algorithm.params.x"] <= 5
        assert 1e-5 <= p.patch["algorithm.params.learning_rate"] <= 1e-1
        assert isinstance(p.patch["algorithm.params.depth"], int) and 1 <= p.patch["algorithm.params.depth"] <= 12
        assert p.patch["algorithm.params.activation"] in ("relu", "gelu", "tanh", "sigmoid")
        assert p.operator == "tpe"
    # the log range is sampled in log space: about half the draws below its geometric middle (1e-3)
    below = sum(p.patch["algorithm.params.learning_rate"] < 1e-3 for p in proposals)
    assert 8 <= below <= 22, below


def test_an_algorithm_kind_choice_is_a_conditional_subtree(tmp_path: Path, host: Any) -> None:
    cfg = search_config(
        tmp_path,
        proposer={"kind": "tpe", "params": {"n_startup_trials": 4}},
        budget={"candidates": 12},
        space={
            "algorithm.kind": {"choice": ["sft", "sdft"]},
            "algorithm.params.topk": {"int_uniform": [5, 40]},  # sdft's only
            "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
        },
    )
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {"max_seq_len": 512}}
    cfg["metadata"] = {"success_metric": "train/final_loss"}
    cfg["search"]["direction"] = "minimize"
    result = evolve(cfg)
    assert {c.run_config.algorithm.kind for c in result.candidates} == {"sft", "sdft"}
    for c in result.candidates:
        assert c.status == "scored"
        if c.operator == "tpe":  # drawn by optuna: topk only under sdft
            assert ("algorithm.params.topk" in c.patch) == (c.patch["algorithm.kind"] == "sdft")
        assert ("topk" in c.run_config.algorithm.params) == (c.run_config.algorithm.kind == "sdft")
    assert not result.rejected


def test_a_failed_candidate_is_told_as_a_failed_trial(tmp_path: Path, host: Any) -> None:
    import optuna

    proposer = _proposer(tmp_path)
    (base,) = proposer.ask([], 1)
    proposer.tell(_told("c0000", base.patch, None))
    proposer.tell(_told("c0001", base.patch, -1.0))
    states = [t.state for t in proposer.study().trials]
    assert states == [optuna.trial.TrialState.FAIL, optuna.trial.TrialState.COMPLETE]
    assert proposer.study().best_value == -1.0


def test_tpe_beats_random_on_the_bowl(tmp_path: Path, host: Any) -> None:
    """Median regret over 5 search seeds at 40 candidates (the benchmark runs 20 seeds beside Optuna's own)."""
    regrets: dict[str, list[float]] = {"random": [], "tpe": []}
    for seed in range(5):
        for kind in regrets:
            cfg = search_config(
                tmp_path / f"{kind}{seed}", proposer={"kind": kind}, budget={"candidates": 40}, parallel=4, seed=seed
            )
            best = evolve(cfg).best
            assert best is not None and best.mean is not None
            regrets[kind].append(-best.mean)
    median = {k: statistics.median(v) for k, v in regrets.items()}
    assert median["tpe"] < median["random"] / 2, median


def _spread(patches: list[dict[str, Any]]) -> float:
    xs = [p["algorithm.params.x"] for p in patches]
    lrs = [math.log10(p["algorithm.params.learning_rate"]) for p in patches]
    return statistics.pstdev(xs) + statistics.pstdev(lrs)


def test_constant_liar_spreads_a_generation(tmp_path: Path, host: Any) -> None:
    """Told the same 16 bowl scores, a generation of 6 drawn with the liar spreads wider than without."""
    from evsys_sdk.testing.search import regret

    spreads: dict[bool, list[float]] = {True: [], False: []}
    for liar in spreads:
        for seed in range(6):
            proposer = _proposer(tmp_path, proposer={"kind": "tpe", "params": {"constant_liar": liar}})
            proposer.rng.seed(f"told:{seed}")
            told = proposer.ask([], 16)
            for i, p in enumerate(told):
                params = {k.rsplit(".", 1)[-1]: v for k, v in p.patch.items()}
                mean = -regret("bowl", **params)
                proposer.tell(_told(f"c{i}", p.patch, mean))
            proposer.rng.seed(f"gen:{seed}")
            spreads[liar].append(_spread([p.patch for p in proposer.ask([], 6)]))
    assert statistics.mean(spreads[True]) > statistics.mean(spreads[False]), spreads


def test_jobs_in_flight_are_running_trials_the_liar_sees(tmp_path: Path, host: Any) -> None:
    """A search refilling one freed place at a time (parallel > 1) asks for one candidate while others
    run: told those as running, its one-at-a-time draws spread wider with the liar than without."""
    from optuna.trial import TrialState

    from evsys_sdk.testing.search import regret

    spreads: dict[bool, list[float]] = {True: [], False: []}
    for liar in spreads:
        for seed in range(6):
            proposer = _proposer(tmp_path, proposer={"kind": "tpe", "params": {"constant_liar": liar}})
            proposer.rng.seed(f"told:{seed}")
            for i, p in enumerate(proposer.ask([], 16)):
                params = {k.rsplit(".", 1)[-1]: v for k, v in p.patch.items()}
                proposer.tell(_told(f"c{i}", p.patch, -regret("bowl", **params)))
            running: list[Candidate] = []
            for j in range(6):
                proposer.running(running)
                proposer.rng.seed(f"gen:{seed}:{j}")
                (p,) = proposer.ask([], 1)
                running.append(Candidate(f"r{j}", [], "tpe", p.patch, None))  # type: ignore[arg-type]
            states = [t.state for t in proposer.study().trials]
            assert states == [TrialState.COMPLETE] * 16 + [TrialState.RUNNING] * 5
            spreads[liar].append(_spread([c.patch for c in running]))
    assert statistics.mean(spreads[True]) > statistics.mean(spreads[False]), spreads


def test_every_ask_hears_the_candidates_in_flight(tmp_path: Path, host: Any) -> None:
    from evsys_optuna.proposers import TPEProposer
    from evsys_sdk.plugins.registry import registry

    heard: list[list[str]] = []

    class Listening(TPEProposer):
        name = "listening"

        def running(self, candidates: list[Candidate]) -> None:
            heard.append([c.id for c in candidates])
            super().running(candidates)

    registry("proposer").add(Listening)
    cfg = search_config(tmp_path, proposer={"kind": "listening"}, budget={"candidates": 7}, parallel=3)
    cfg["executor"] = {"kind": "ordered", "params": {"by": "depth"}}
    result = evolve(cfg, store=LocalStore(tmp_path / "db"))
    assert heard[0] == [] and len(heard) == 5 and all(len(h) == 2 for h in heard[1:])
    told = {c.id for c in result.candidates}
    assert all(set(h) <= told for h in heard) and result.spent["candidates"] == 7


def test_the_same_seed_gives_the_same_search(tmp_path: Path, host: Any) -> None:
    runs = [evolve(search_config(tmp_path / str(i), budget={"candidates": 14}, parallel=3)).to_json() for i in (0, 1)]
    assert runs[0]["candidates"] == runs[1]["candidates"]
    other = evolve(search_config(tmp_path / "2", budget={"candidates": 14}, parallel=3, seed=1)).to_json()
    assert other["candidates"] != runs[0]["candidates"]


def test_resume_from_every_crash_point_rebuilds_the_same_study(tmp_path: Path, host: Any) -> None:
    """A crash leaves a prefix of the journal; the resumed search tells the scored candidates again, the
    study is rebuilt from them and the search continues as if never interrupted."""
    cfg = search_config(
        tmp_path, proposer={"kind": "tpe", "params": {"n_startup_trials": 3}}, budget={"candidates": 9}, parallel=2
    )
    full_db = tmp_path / "full.db"
    reference = evolve(cfg, store=LocalStore(full_db)).to_json()
    assert sum(c["operator"] == "tpe" for c in reference["candidates"]) == 8
    for k, db in crashed_copies(full_db, tmp_path):
        resumed = evolve(cfg, resume=True, store=db).to_json()
        assert resumed["candidates"] == reference["candidates"], k
        assert resumed["best"] == reference["best"], k
