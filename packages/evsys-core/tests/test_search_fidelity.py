"""``search.fidelity``: rungs on in-loop validation (ASHA) over real mock arms, stopped at their rung."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from evsys_sdk.cli.main import main
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.search import evolve
from evsys_sdk.search.engine import Candidate
from evsys_sdk.search.fidelity import promotions
from evsys_sdk.search.proposers import RandomProposer
from evsys_sdk.spec.search import FidelitySpec
from evsys_sdk.testing.search import crashed_copies, landscape_experiment
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(120)

SPACE = {
    "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
    "algorithm.params.lora_rank": {"choice": [4, 8, 16, 32]},
    "algorithm.params.num_epochs": {"int_uniform": [1, 4]},
}
RUNGS = [10, 20, 40]


def fidelity_config(tmp_path: Path, *, candidates: int = 6, parallel: int = 2, **search: Any) -> dict[str, Any]:
    block = {
        "proposer": {"kind": "random"},
        "budget": {"candidates": candidates},
        "parallel": parallel,
        "seed": 0,
        "space": SPACE,
        "fidelity": {"rungs": RUNGS, "reduction": 2},
        **search,
    }
    return landscape_experiment(tmp_path, block, steps=40, run_every=10, n_rows=30)


def write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def error_of(tmp_path: Path, cfg: dict[str, Any], capsys: Any) -> str:
    assert main(["evolve", str(write(tmp_path, cfg))]) == 1
    err: str = capsys.readouterr().err
    assert "Traceback" not in err and "search.yaml:" in err
    assert not (tmp_path / "out").exists()  # found before any arm
    return err


# --- validation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rungs": [20, 10, 40]}, "rungs must be increasing positive steps"),
        ({"rungs": [0, 10, 40]}, "rungs must be increasing positive steps"),
        ({"rungs": [40]}, "search.fidelity.rungs: List should have at least 2 items"),
        ({"reduction": 1}, "search.fidelity.reduction: Input should be greater than or equal to 2"),
        ({"rungs": [15, 20, 40]}, "rung 15 is not a multiple of benchmark 'val's run_every 10"),
        ({"rungs": [10, 20, 80]}, "the last rung 80 is beyond the run's 40 steps"),
        ({"rung": [10]}, "search.fidelity.rung: unknown field; did you mean 'rungs'"),
    ],
)
def test_rungs_are_checked_before_any_arm(tmp_path: Path, capsys: Any, change: dict[str, Any], expected: str) -> None:
    cfg = fidelity_config(tmp_path)
    cfg["search"]["fidelity"] = {**cfg["search"]["fidelity"], **change}
    if "rung" in change:
        del cfg["search"]["fidelity"]["rungs"]
    assert expected in error_of(tmp_path, cfg, capsys)


def test_rungs_need_the_objective_measured_in_the_loop(tmp_path: Path, capsys: Any) -> None:
    cfg = fidelity_config(tmp_path)
    cfg["metadata"]["success_metric"] = "train/final_loss"
    cfg["search"]["direction"] = "minimize"
    err = error_of(tmp_path, cfg, capsys)
    assert "metadata.success_metric: search.fidelity compares the live score at each rung" in err
    assert "e.g. val.exact_match (got 'train/final_loss')" in err
    cfg["metadata"]["benchmark"][0].pop("run_every")
    assert "(add one with run_every to metadata.benchmark)" in error_of(tmp_path, cfg, capsys)


# --- the promotion rule -------------------------------------------------------------------------------


def _at(cid: str, rung: int, mean: float, status: str = "stopped") -> Candidate:
    c = Candidate(cid, [], "random", {}, run_config=None, status=status, rung=rung)  # type: ignore[arg-type]
    for k in range(rung + 1):
        c.rung_means[RUNGS[k]] = mean if k == rung else 1.0
    return c


def test_asha_promotes_the_top_share_of_each_rung_so_far_highest_rung_first() -> None:
    fid = FidelitySpec(rungs=RUNGS, reduction=3)
    pool = [_at("a", 0, 0.1), _at("b", 0, 0.5), _at("c", 0, 0.3)]
    # Three results at rung 0: the top one (b) goes on; no waiting for more.
    assert [(c.id, r) for c, r in promotions(pool, fid, maximize=True, limit=4, finishing=False)] == [("b", 1)]
    assert [c.id for c, _ in promotions(pool, fid, maximize=False, limit=4, finishing=False)] == ["a"]
    # b went on (its rung-0 result still counts there): with five results, still only floor(5/3) = 1 on.
    pool = [_at("a", 0, 0.1), _at("b", 1, 0.2), _at("c", 0, 0.3), _at("d", 0, 0.05), _at("e", 0, 0.0)]
    pool[1].rung_means[RUNGS[0]] = 0.5
    assert promotions(pool, fid, maximize=True, limit=4, finishing=False) == []
    pool.append(_at("f", 0, 0.4))  # six results: the top two are b (gone on) and f
    assert [(c.id, r) for c, r in promotions(pool, fid, maximize=True, limit=4, finishing=False)] == [("f", 1)]
    # Nothing left to promote by the rule and no new candidate: the best of the highest rung goes on.
    assert [(c.id, r) for c, r in promotions(pool[:5], fid, maximize=True, limit=4, finishing=True)] == [("b", 2)]
    done = [*pool[:5], _at("g", 2, 0.9, status="scored")]
    assert promotions(done, fid, maximize=True, limit=4, finishing=True) == []  # one has the whole run


# --- real searches ------------------------------------------------------------------------------------


def _runs(db: LocalStore, experiment_id: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in db.experiment_runs(experiment_id)}


def test_a_stopped_arm_is_recorded_with_its_scores_and_charged_its_steps(tmp_path: Path, capsys: Any) -> None:
    path = write(tmp_path, fidelity_config(tmp_path))
    assert main(["evolve", str(path)]) == 0
    out = capsys.readouterr()
    assert "stopped at rung 10: " in out.err and "candidate(s) stopped at a rung" in out.out
    assert main(["evolve", "show", "landscape", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    cands = {c["id"]: c for c in shown["candidates"]}
    stopped = [c for c in cands.values() if c["status"] == "stopped"]
    full = [c for c in cands.values() if c["status"] == "scored"]
    assert stopped and full and len(cands) == 6
    for c in stopped:
        (step,) = [int(k) for k in c["rung_scores"] if c["message"] == f"stopped at rung {k}"]
        assert max(int(k) for k in c["rung_scores"]) == step and c["mean"] is None
    # Charged: every job's steps (a promoted candidate trained again from the start), nothing more.
    steps = sum(max(int(k) for k in c["rung_scores"]) if c["status"] == "stopped" else 0 for c in cands.values())
    jobs = {k: sum(str(k) in c["rung_scores"] for c in cands.values()) for k in RUNGS}
    assert shown["spent"]["train_steps"] == sum(k * n for k, n in jobs.items()) > steps
    assert shown["spent"]["arms"] == sum(jobs.values()) and shown["spent"]["candidates"] == 6
    # The records: each job a run; a stopped one says so, with its in-loop scores.
    db = LocalStore(Path(os.environ["EVSYS_WORKSPACE"]) / "evsys.db")
    (exp,) = db.list_experiments()
    runs = _runs(db, exp["id"])
    assert len(runs) == shown["spent"]["arms"]
    for c in stopped:
        for k in c["rung_scores"]:
            run = runs[c["id"] if int(k) == RUNGS[-1] else f"{c['id']}@{k}"]
            assert run["status"] == "stopped" and run["error_message"] == f"stopped at rung {k}"
            evals = db.run_evals(run["id"])
            assert max(e["step"] for e in evals) == int(k)
            assert next(e for e in evals if e["step"] == int(k))["metrics"]["pass_rate"] == c["rung_scores"][k][0]
    assert all(runs[c["id"]]["status"] == "completed" for c in full)
    assert main(["evolve", "show", "landscape"]) == 0
    table = capsys.readouterr().out
    assert re.search(r"^c\d{4}\s+-\s+random\s+stopped at rung 10\s+[\d.]+ @10", table, re.M)


def test_rung_scores_equal_the_uninterrupted_runs(tmp_path: Path) -> None:
    """A promoted candidate trains again from the start: its score at each rung is the one a run that
    never stopped reports at that step, and the whole run's is the plain arm's."""
    result = evolve(fidelity_config(tmp_path), store=LocalStore(tmp_path / "db"))
    assert result.best is not None and result.best.status == "scored"
    for c in result.candidates:
        plain = load_yaml({**fidelity_config(tmp_path / c.id), "search": None, "run": c.run_config.model_dump()})
        (arm,) = Experiment(plain).run().arms
        for step, scores in c.rung_scores.items():
            live = arm.eval("val", step=step)
            assert live is not None and scores == [live.metrics["pass_rate"]], (c.id, step)
        if c.status == "scored":
            assert c.scores == [arm.score("val.pass_rate")]


def test_promotions_do_not_wait_for_a_rung_to_fill(tmp_path: Path) -> None:
    """ASHA with parallel 2: promotions start as soon as a rung has enough results, while new candidates
    are still being proposed, each decided for the one place a job's end freed; the best of those run to
    the end is the search's best."""
    result = evolve(fidelity_config(tmp_path, candidates=10), store=LocalStore(tmp_path / "db"))
    db = LocalStore(tmp_path / "db")
    generations = [r["payload"] for r in db.query("SELECT payload FROM search_events WHERE kind = 'generation'")]
    assert generations[0] == {"generation": 0, "size": 2}
    assert all(g["size"] + len(g.get("promote", [])) == 1 for g in generations[1:])  # one freed place each
    last_new = max(i for i, g in enumerate(generations) if g["size"])
    assert min(i for i, g in enumerate(generations) if g.get("promote")) < last_new
    full = [c for c in result.candidates if c.status == "scored"]
    assert result.best is max(full, key=lambda c: c.mean or 0.0)
    assert all(len(c.rung_scores) == 3 for c in full)  # every rung on the way


class _Counting(RandomProposer):
    """Random proposals that report their asks as the proposer's own usage."""

    name: ClassVar[str] = "counting"

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.asks = 0

    def ask(self, history: list[Any], n: int) -> list[Any]:
        self.asks += 1
        return super().ask(history, n)

    def usage(self) -> dict[str, Any]:
        return {"calls": self.asks}


def test_resume_from_every_crash_point_equals_the_uninterrupted_search(tmp_path: Path) -> None:
    from evsys_sdk.plugins.registry import registry

    registry("proposer").add(_Counting)
    cfg = fidelity_config(tmp_path, proposer={"kind": "counting"})
    full_db = tmp_path / "full.db"
    reference = evolve(cfg, store=LocalStore(full_db)).to_json()
    generations = LocalStore(full_db).query("SELECT payload FROM search_events WHERE kind = 'generation'")
    asks = sum(1 for g in generations if g["payload"]["size"])  # random proposals are never rejected
    assert reference["spent"]["proposer"] == {"calls": asks} and asks > 3  # some places went to promotions
    assert any(c["status"] == "stopped" for c in reference["candidates"])
    for k, db in crashed_copies(full_db, tmp_path):
        resumed = evolve(cfg, resume=True, store=db).to_json()
        assert resumed["candidates"] == reference["candidates"], k
        assert resumed["best"] == reference["best"], k
        spent, expected = dict(resumed["spent"]), dict(reference["spent"])
        assert spent.pop("seconds") >= 0 and expected.pop("seconds") >= 0  # wall time differs
        assert spent == expected, k


def test_an_arm_stopped_at_its_step_is_recorded_stopped_and_resumed_as_such(tmp_path: Path) -> None:
    raw = landscape_experiment(tmp_path, {}, steps=40, run_every=10, n_rows=12)
    cfg = load_yaml({k: v for k, v in raw.items() if k != "search"})
    store = LocalStore(tmp_path / "db")
    (arm,) = Experiment(cfg, store=store, stop_at={"sft": 20}).run().arms
    assert (arm.status, arm.error, arm.metrics["total_steps"]) == ("stopped", "stopped at rung 20", 20)
    assert [e.step for e in arm.evals] == [10, 20] and not arm.resumed
    (run,) = store.experiment_runs(store.list_experiments()[0]["id"])
    assert run["status"] == "stopped" and sorted(e["step"] for e in store.run_evals(run["id"])) == [10, 20]
    (again,) = Experiment(cfg, store=store, stop_at={"sft": 20}, resume=True).run().arms
    assert again.resumed and again.status == "stopped" and again.evals == arm.evals


def test_the_process_executor_stops_arms_at_the_same_rungs(tmp_path: Path) -> None:
    # one place: jobs end in proposal order on any executor, so the decisions are the same
    here = evolve(fidelity_config(tmp_path / "a", parallel=1), store=LocalStore(tmp_path / "a.db")).to_json()
    cfg = fidelity_config(tmp_path / "b", parallel=1)
    cfg["executor"] = {"kind": "process", "params": {"max_workers": 2}}
    there = evolve(cfg, store=LocalStore(tmp_path / "b.db")).to_json()
    assert there["candidates"] == here["candidates"] and there["spent"]["train_steps"] == here["spent"]["train_steps"]


def test_a_proposal_whose_steps_end_before_the_last_rung_is_rejected_never_charged(tmp_path: Path) -> None:
    space = {**SPACE, "algorithm.params.max_steps": {"int_uniform": [39, 40]}}
    result = evolve(fidelity_config(tmp_path, candidates=4, space=space), store=LocalStore(tmp_path / "db"))
    short = [r for r in result.rejected if r["patch"]["algorithm.params.max_steps"] == 39]
    assert short and {r["reason"] for r in short} == {"its 39 steps end before the last rung 40"}
    assert all(c.run_config.algorithm.params["max_steps"] == 40 for c in result.candidates)
    assert result.spent["rejected"] == len(result.rejected) and result.spent["candidates"] == 4
