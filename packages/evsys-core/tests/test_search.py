"""``evsys evolve``: the search block's validation, proposers, ledger, records, CLI, Python API, resume."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.cli.main import main
from evsys_sdk.search import Proposal, Proposer, evolve
from evsys_sdk.search.ledger import ArmCost, Ledger
from evsys_sdk.search.space import Axis
from evsys_sdk.spec.search import BudgetSpec, Distribution
from evsys_sdk.testing import search as search_kit
from evsys_sdk.testing.executors import default_sigint
from evsys_sdk.tracking.store import LocalStore

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def host(plugin_host: Any) -> Any:
    plugin_host.add_plugin(search_kit, "search_kit")
    return plugin_host


def search_config(tmp_path: Path, *, space: Any = None, n_repeats: int = 2, **search: Any) -> dict[str, Any]:
    """A search over the synthetic bowl (known optimum, score = -regret)."""
    block = {
        "proposer": {"kind": "mutate"},
        "budget": {"candidates": 8},
        "parallel": 2,
        "seed": 0,
        "space": space
        or {
            "algorithm.params.x": {"uniform": [-5, 5]},
            "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
            "algorithm.params.depth": {"int_uniform": [1, 12]},
            "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
        },
        **search,
    }
    return search_kit.experiment(tmp_path / "out", block, n_repeats=n_repeats)


def write(tmp_path: Path, cfg: dict[str, Any], name: str = "search.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def errors_of(path: Path, capsys: Any) -> str:
    assert main(["evolve", str(path)]) == 1
    err: str = capsys.readouterr().err
    assert "Traceback" not in err
    return err


# --- validation, before any arm -----------------------------------------------------------------------


def test_unknown_space_path_is_located_with_did_you_mean(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = search_config(tmp_path, space={"algorithm.params.lerning_rate": {"log_uniform": [1e-5, 1e-2]}})
    err = errors_of(write(tmp_path, cfg), capsys)
    assert "search.yaml:" in err and "search.space.algorithm.params.lerning_rate" in err
    assert "did you mean 'learning_rate'?" in err
    assert not (tmp_path / "out").exists()  # nothing ran


@pytest.mark.parametrize(
    ("dist", "expected"),
    [
        ({"uniform": [-10, 5]}, "below the field's minimum -5"),
        ({"int_uniform": [1, 3]}, None),
        ({"log_uniform": [1e-3, 2]}, "above the field's maximum 1"),
    ],
)
def test_ranges_stay_inside_the_schema_bounds(
    tmp_path: Path, host: Any, capsys: Any, dist: dict[str, Any], expected: str | None
) -> None:
    field = "depth" if "int_uniform" in dist else ("learning_rate" if "log_uniform" in dist else "x")
    cfg = search_config(tmp_path, space={f"algorithm.params.{field}": dist}, budget={"candidates": 1})
    if expected is None:
        assert main(["evolve", str(write(tmp_path, cfg))]) == 0
        return
    assert expected in errors_of(write(tmp_path, cfg), capsys)


def test_distribution_must_fit_the_field_type(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = search_config(
        tmp_path,
        space={
            "algorithm.params.depth": {"uniform": [1, 4]},
            "algorithm.params.activation": {"choice": ["relu", "swish"]},
            "data.path": {"choice": ["a", "b"]},
        },
    )
    err = errors_of(write(tmp_path, cfg), capsys)
    assert "uniform does not fit an integer field; use int_uniform" in err
    assert "value 'swish'" in err
    assert "'data.path' cannot be searched: the data is what the recipe trains on" in err


def test_malformed_block_is_located_by_the_yaml_loader(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = search_config(tmp_path, budget={"candidate": 4})
    err = errors_of(write(tmp_path, cfg), capsys)
    assert "search.budget.candidate: unknown field; did you mean 'candidates'?" in err
    cfg = search_config(tmp_path, space={"algorithm.params.x": {"uniform": [3, 1]}})
    assert "the low end must be below the high end" in errors_of(write(tmp_path, cfg), capsys)


def test_unknown_proposer_and_bad_params(tmp_path: Path, host: Any, capsys: Any) -> None:
    err = errors_of(write(tmp_path, search_config(tmp_path, proposer={"kind": "mutat"})), capsys)
    assert "search.proposer.kind" in err and "did you mean 'mutate'?" in err
    cfg = search_config(tmp_path, proposer={"kind": "mutate", "params": {"sigma": 3}})
    assert "search.proposer.params.sigma" in errors_of(write(tmp_path, cfg), capsys)


def test_paired_promotion_needs_seeds(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = search_config(tmp_path, n_repeats=1, promotion={"rule": "paired"})
    assert "it needs n_repeats >= 2" in errors_of(write(tmp_path, cfg), capsys)


def test_search_block_given_to_run_points_to_evolve(tmp_path: Path, host: Any, capsys: Any) -> None:
    assert main(["run", str(write(tmp_path, search_config(tmp_path)))]) == 1
    err = capsys.readouterr().err
    assert "search.yaml:" in err and "evsys evolve PATH" in err


def test_a_budget_of_fewer_than_three_proposals_warns(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = search_config(tmp_path, budget={"arms": 5}, n_repeats=2)
    assert main(["evolve", str(write(tmp_path, cfg))]) == 0
    err = capsys.readouterr().err
    assert "search.yaml:" in err and "search.budget: buys only 2 proposal(s) of 2 arm(s)" in err


def test_space_auto_from_schema_bounds(tmp_path: Path, host: Any) -> None:
    from evsys_sdk.search.space import auto_space
    from evsys_sdk.spec.config import RunConfig

    run = RunConfig.model_validate(search_config(tmp_path)["run"])
    space = auto_space(run)
    assert space["algorithm.params.x"] == Distribution(uniform=(-5, 5))
    assert space["algorithm.params.depth"] == Distribution(int_uniform=(1, 12))
    assert space["algorithm.params.learning_rate"].kind == "log_uniform"
    assert space["algorithm.params.activation"].choice == ["relu", "gelu", "tanh", "sigmoid"]
    assert "algorithm.params.seed" not in space and "algorithm.params.arm_log" not in space
    result = evolve(search_config(tmp_path, space="auto", budget={"candidates": 3}))
    assert result.best is not None and set(result.best.patch) == set(space)


# --- operators, proposers, ledger ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "dist",
    [
        Distribution(uniform=(-1.0, 1.0)),
        Distribution(log_uniform=(1e-5, 1e-1)),
        Distribution(int_uniform=(1, 4)),
        Distribution(choice=[4, 8, 16, 32]),
    ],
)
def test_samples_and_mutations_stay_in_the_space(dist: Distribution) -> None:
    axis, rng = Axis("p", dist), random.Random(1)
    value = axis.sample(rng)
    for _ in range(2000):
        value = axis.mutate(value, rng, 0.5)
        if dist.kind == "choice":
            assert value in (dist.choice or [])
        else:
            low, high = dist.bounds
            assert low <= value <= high
            assert isinstance(value, int) == (dist.kind == "int_uniform")


def test_ledger_reserves_then_settles_exactly() -> None:
    ledger = Ledger(BudgetSpec(arms=10, arm_seconds=2.0), arms_per_candidate=3, held=1)
    assert ledger.proposals_bought() == 3  # (10 - 1 held for confirmation) // 3
    assert ledger.affordable(4) == 3
    ledger.reserve(2)
    assert ledger.affordable(4) == 1
    ledger.settle(2, 6, [ArmCost(1.5, 10, 2)] * 5)  # one arm never ran: it is not charged
    assert (ledger.spent.arms, ledger.spent.candidates, ledger.spent.train_steps) == (5, 2, 50)
    assert ledger.spent.seconds == pytest.approx(7.5)
    assert ledger.affordable(4) == 1
    ledger.release_held()
    assert ledger.reserved_arms == 1


class _Invalid(Proposer):
    """Proposes a value the field's schema refuses, every other time."""

    name: ClassVar[str] = "invalid_every_other"

    def ask(self, history: list[Any], n: int) -> list[Proposal]:
        assert self.space is not None
        out = []
        for _ in range(n):
            patch = self.space.sample(self.rng)
            if self.rng.random() < 0.5:
                patch["algorithm.params.x"] = 99.0
            out.append(Proposal(patch, operator="test"))
        return out


class _AlwaysInvalid(Proposer):
    name: ClassVar[str] = "always_invalid"

    def ask(self, history: list[Any], n: int) -> list[Proposal]:
        return [Proposal({"algorithm.params.depth": 0}, operator="test") for _ in range(n)]


def test_invalid_proposals_are_recorded_and_never_charged(tmp_path: Path, host: Any) -> None:
    from evsys_sdk.plugins.registry import registry

    registry("proposer").add(_Invalid)
    result = evolve(
        search_config(tmp_path, proposer={"kind": "invalid_every_other"}), store=LocalStore(tmp_path / "db")
    )
    assert len(result.candidates) == 8 and result.spent["candidates"] == 8 and result.spent["arms"] == 16
    assert result.rejected and all("outside [-5, 5]" in r["reason"] for r in result.rejected)
    assert result.spent["rejected"] == len(result.rejected)
    registry("proposer").add(_AlwaysInvalid)
    with pytest.raises(EvsysError, match="proposer 'always_invalid' was stopped: 10 asks in a row"):
        evolve(search_config(tmp_path, proposer={"kind": "always_invalid"}))


def test_mutate_beats_random_on_the_bowl(tmp_path: Path, host: Any) -> None:
    """Median over 5 search seeds (the benchmark runs 20+ on three landscapes)."""
    regrets: dict[str, list[float]] = {"random": [], "mutate": []}
    for kind in regrets:
        for seed in range(5):
            cfg = search_config(
                tmp_path / f"{kind}{seed}",
                n_repeats=1,
                proposer={"kind": kind},
                budget={"candidates": 40},
                parallel=4,
                seed=seed,
            )
            best = evolve(cfg).best
            assert best is not None and best.mean is not None
            regrets[kind].append(-best.mean)
    median = {k: sorted(v)[2] for k, v in regrets.items()}
    assert median["mutate"] < median["random"], median


# --- records, CLI, Python API, resume -----------------------------------------------------------------


def test_cli_search_records_best_yaml_and_show(tmp_path: Path, host: Any, capsys: Any) -> None:
    path = write(tmp_path, search_config(tmp_path, confirm_seeds=2))
    assert main(["evolve", str(path)]) == 0
    captured = capsys.readouterr()
    assert "[8/8]" in captured.err and "(new best)" in captured.err
    assert "confirmed c" in captured.err and "best recipe:" in captured.out
    assert main(["evolve", "show", "evo", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert set(shown) == {"name", "best", "candidates", "rejected", "spent"}
    cands = shown["candidates"]
    assert [c["id"] for c in cands] == [f"c{i:04d}" for i in range(8)]
    assert set(cands[0]) == {"id", "parents", "operator", "patch", "scores", "mean", "ci95", "status"}
    assert cands[0]["operator"] == "base" and set(cands[0]["patch"]) == set(search_config(tmp_path)["search"]["space"])
    assert all(p in {c["id"] for c in cands[: int(c2["id"][1:])]} for c2 in cands for p in c2["parents"])
    best = shown["best"]
    assert best["mean"] == max(c["mean"] for c in cands) and len(best["confirm"]["scores"]) == 2
    assert shown["spent"]["arms"] == 8 * 2 + 2 and shown["spent"]["candidates"] == 8
    # One experiment record; each candidate a replicate group of it; every arm once.
    db = LocalStore(Path(os.environ["EVSYS_WORKSPACE"]) / "evsys.db")
    (exp,) = db.list_experiments()
    groups = db.experiment_groups(exp["id"])
    assert [g["name"] for g in groups][:8] == [c["id"] for c in cands]
    runs = db.experiment_runs(exp["id"])
    assert len(runs) == shown["spent"]["arms"] and all(r["status"] == "completed" for r in runs)
    assert exp["status"] == "completed" and exp["best_score"] == best["mean"]
    # best.yaml is a plain config that `evsys run` reproduces.
    best_yaml = tmp_path / "out" / "best.yaml"
    plain = yaml.safe_load(best_yaml.read_text())
    assert "search" not in plain and plain["n_repeats"] == 2
    assert main(["run", str(best_yaml), "--json"]) == 0
    arms = json.loads(capsys.readouterr().out)
    assert [a["metrics"]["score"] for a in arms] == best["scores"]
    assert main(["evolve", "show", "evo"]) == 0
    assert re.search(r"^c0000\s+-\s+base\s+scored", capsys.readouterr().out, re.M)


def test_paired_promotion_keeps_an_incumbent_a_noise_win_does_not_beat(tmp_path: Path, host: Any) -> None:
    from evsys_sdk.base.stats import summarize
    from evsys_sdk.search.engine import Candidate
    from evsys_sdk.search.promotion import promotes
    from evsys_sdk.spec.search import PromotionSpec

    def cand(scores: list[float]) -> Candidate:
        c = Candidate("c", [], "t", {}, None, scores=scores, status="scored")  # type: ignore[arg-type]
        c.mean = summarize(scores).mean
        return c

    incumbent, noisy, clear = cand([1.0, 2.0, 3.0]), cand([1.5, 1.9, 3.3]), cand([1.5, 2.5, 3.5])
    paired = PromotionSpec(rule="paired", alpha=0.05)
    assert promotes(noisy, incumbent, maximize=True, rule=PromotionSpec(rule="mean"))
    assert not promotes(noisy, incumbent, maximize=True, rule=paired)
    assert promotes(clear, incumbent, maximize=True, rule=paired)
    assert not promotes(clear, incumbent, maximize=False, rule=paired)


def test_resume_after_kill_9_loses_and_duplicates_nothing(tmp_path: Path, host: Any) -> None:
    """The search process is SIGKILLed as its 8th arm starts; --resume finishes it equal to an uninterrupted one."""
    log = tmp_path / "arms.log"
    cfg = search_config(tmp_path, budget={"candidates": 6})
    cfg["run"]["algorithm"]["params"].update(arm_log=str(log), kill_at_arm=7)
    killed = write(tmp_path, cfg)
    script = (
        "import sys; from evsys_sdk.plugins.host import current_host; from evsys_sdk.testing import search as kit;"
        "current_host().add_plugin(kit, 'search_kit'); "
        "from evsys_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    env = {**os.environ, "EVSYS_WORKSPACE": str(tmp_path / "ws")}
    first = subprocess.run([sys.executable, "-c", script, "evolve", str(killed)], env=env, capture_output=True)
    assert first.returncode == -9
    ended = [x for x in log.read_text().splitlines() if x.startswith("end ")]
    assert len(ended) == 7
    cfg["run"]["algorithm"]["params"]["kill_at_arm"] = None  # same search otherwise: the arms' configs changed
    # A changed config is not the same search: --resume refuses it.
    again = subprocess.run(
        [sys.executable, "-c", script, "evolve", str(write(tmp_path, cfg, "changed.yaml")), "--resume"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert again.returncode == 1 and "was started from a different config" in again.stderr
    # The real resume: the same file (its arms kill only once).
    resumed = subprocess.run(
        [sys.executable, "-c", script, "evolve", str(killed), "--resume"], env=env, capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr
    ends = [x for x in log.read_text().splitlines() if x.startswith("end ")]
    assert len(ends) == len(set(ends)) == 12  # every arm ended exactly once
    shown = subprocess.run(
        [sys.executable, "-c", script, "evolve", "show", "evo", "--json"], env=env, capture_output=True, text=True
    )
    after = json.loads(shown.stdout)
    cfg["run"]["algorithm"]["params"].update(arm_log=None)
    cfg["output_dir"] = str(tmp_path / "fresh")
    fresh = evolve(cfg, store=LocalStore(tmp_path / "fresh.db")).to_json()
    assert [(c["patch"], c["scores"]) for c in after["candidates"]] == [
        (c["patch"], c["scores"]) for c in fresh["candidates"]
    ]
    assert after["spent"]["arms"] == fresh["spent"]["arms"] == 12
    runs = LocalStore(tmp_path / "ws" / "evsys.db").query("SELECT name FROM runs")
    assert len(runs) == len({r["name"] for r in runs}) == 12


def test_arm_seconds_gives_every_arm_the_same_time_budget(tmp_path: Path, host: Any) -> None:
    cfg = search_config(
        tmp_path,
        n_repeats=1,
        proposer={"kind": "random"},
        budget={"candidates": 6, "arm_seconds": 0.3},
        space={
            "algorithm.params.step_seconds": {"choice": [0.0, 0.05]},
            "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
        },
    )
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {"max_steps": 20, "step_seconds": 0.0}}
    cfg["metadata"] = {"success_metric": "train/final_loss"}
    cfg["search"]["direction"] = "minimize"
    result = evolve(cfg)
    assert all(c.run_config.max_seconds == 0.3 for c in result.candidates)
    slow = [c for c in result.candidates if c.patch["algorithm.params.step_seconds"] == 0.05]
    assert slow and all(c.status == "failed" and "time budget exceeded" in (c.error or "") for c in slow)
    assert result.best is not None and result.best.patch["algorithm.params.step_seconds"] == 0.0
    assert result.spent["arms"] == 6 and result.spent["seconds"] < 6 * 0.3 + 1.0


def test_validate_deep_checks_the_search_block(tmp_path: Path, host: Any, capsys: Any) -> None:
    good = write(tmp_path, search_config(tmp_path))
    assert main(["validate", "--deep", str(good)]) == 0
    bad = search_config(tmp_path, space={"algorithm.params.dept": {"int_uniform": [1, 4]}})
    assert main(["validate", "--deep", str(write(tmp_path, bad, "bad.yaml"))]) == 1
    assert "bad.yaml:" in capsys.readouterr().err


def test_algorithm_kind_switches_the_params_subtree(tmp_path: Path, host: Any) -> None:
    cfg = search_config(
        tmp_path,
        n_repeats=1,
        proposer={"kind": "random"},
        budget={"candidates": 10},
        space={
            "algorithm.kind": {"choice": ["sft", "sdft"]},
            "algorithm.params.topk": {"int_uniform": [5, 40]},  # sdft's only
            "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]},
        },
    )
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {"max_seq_len": 512}}  # sft's only
    cfg["metadata"] = {"success_metric": "train/final_loss"}
    cfg["search"]["direction"] = "minimize"
    result = evolve(cfg)
    kinds = {c.run_config.algorithm.kind for c in result.candidates}
    assert kinds == {"sft", "sdft"}
    for c in result.candidates:
        params = c.run_config.algorithm.params
        assert ("topk" in params) == (c.run_config.algorithm.kind == "sdft")
        assert ("max_seq_len" in params) == (c.run_config.algorithm.kind == "sft")
        assert params["learning_rate"] == c.patch["algorithm.params.learning_rate"]
        assert c.status == "scored"


class _ForwardingStore:
    """A tracking store that is not a LocalStore (as the dashboard client is not): calls go to ``inner``."""

    def __init__(self, inner: LocalStore):
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_records_go_to_the_given_store_and_the_journal_to_the_workspace(tmp_path: Path, host: Any) -> None:
    remote = LocalStore(tmp_path / "remote.db")
    result = evolve(search_config(tmp_path), store=_ForwardingStore(remote))
    (exp,) = remote.list_experiments()
    assert exp["id"] == result.experiment_id and len(remote.experiment_runs(exp["id"])) == result.spent["arms"]
    assert remote.query("SELECT name FROM sqlite_master WHERE name = 'search_events'") == []
    from evsys_sdk.search.engine import read_search

    workspace = LocalStore(Path(os.environ["EVSYS_WORKSPACE"]) / "evsys.db")
    found = read_search(workspace, "evo")
    assert found is not None and [c.id for c in found[1].candidates] == [c.id for c in result.candidates]


def test_the_experiment_record_carries_the_search(tmp_path: Path, host: Any) -> None:
    """Through the store's ordinary experiment update (a dashboard never sees the journal): candidates with
    their lineage, patch, generation, scores, CI and seconds; rejections with reasons; spend; the space."""
    from evsys_sdk.plugins.registry import registry

    registry("proposer").add(_Invalid)
    remote = LocalStore(tmp_path / "remote.db")
    updates: list[dict[str, Any]] = []

    class Recording(_ForwardingStore):
        def update_experiment(self, experiment_id: str, **patch: Any) -> dict[str, Any]:
            updates.append(patch)
            return self.inner.update_experiment(experiment_id, **patch)

    cfg = search_config(tmp_path, proposer={"kind": "invalid_every_other"}, parallel=2)
    result = evolve(cfg, store=Recording(remote))
    (exp,) = remote.list_experiments()
    record = exp["extra"]["search"]
    shown = result.to_json()
    assert [{k: c[k] for k in shown["candidates"][0]} for c in record["candidates"]] == shown["candidates"]
    assert [c["generation"] for c in record["candidates"]] == [c.generation for c in result.candidates]
    assert [c["seconds"] for c in record["candidates"]] == [round(c.seconds, 3) for c in result.candidates]
    assert record["rejected"] == result.rejected and record["spent"] == result.spent and record["omitted"] == 0
    assert record["best"] == result.best.id and record["metric"] == "score" and record["direction"] == "maximize"
    assert record["space"]["algorithm.params.depth"] == {"kind": "int_uniform", "values": [1, 12], "base": 1}
    assert record["budget"] == {"candidates": 8}
    # one update per job ended (a running search shows up as it goes; each ended job's place is refilled
    # after its update), then the conclusion's
    progress = [len(u["search"]["candidates"]) for u in updates]
    assert progress == [2, 3, 4, 5, 6, 7, 8, 8, 8] and updates[-1]["status"] == "completed"


def test_a_large_search_keeps_its_newest_candidates_and_the_best_on_the_record(tmp_path: Path, host: Any) -> None:
    from evsys_sdk.search.engine import Candidate, SearchResult
    from evsys_sdk.search.records import MAX_RECORD_BYTES, search_record
    from evsys_sdk.search.space import Space
    from evsys_sdk.spec.config import RunConfig

    base = RunConfig.model_validate(search_config(tmp_path)["run"])

    def candidate(i: int) -> Candidate:
        c = Candidate(f"c{i:04d}", [], "random", {"p": "x" * 2000}, base)
        c.mean, c.scores, c.status = float(i == 3), [float(i == 3)], "scored"
        return c

    cands = [candidate(i) for i in range(600)]
    result = SearchResult("big", "e", "m", "maximize", cands[3], cands, [], {"candidates": 600})
    record = search_record(result, Space(base, []), BudgetSpec(candidates=600))
    kept = [c["id"] for c in record["candidates"]]
    assert len(json.dumps(record)) <= MAX_RECORD_BYTES and record["omitted"] == 600 - len(kept) > 0
    assert kept[0] == "c0003" and kept[1:] == [c.id for c in cands[600 - len(kept) + 1 :]]


def test_the_same_seed_gives_the_same_search_under_the_process_executor(tmp_path: Path, host: Any) -> None:
    """With one place, jobs end in proposal order on any executor (the seeds of a job still run side by
    side); with more, decisions follow the order jobs end, which the executor decides."""
    cfg = search_config(tmp_path / "seq", budget={"candidates": 6}, parallel=1)
    sequential = evolve(cfg, store=LocalStore(tmp_path / "seq.db")).to_json()
    cfg = search_config(tmp_path / "proc", budget={"candidates": 6}, parallel=1)
    cfg["executor"] = {"kind": "process", "params": {"max_workers": 2, "plugins": ["evsys_sdk.testing.search"]}}
    process = evolve(cfg, store=LocalStore(tmp_path / "proc.db")).to_json()
    assert process["candidates"] == sequential["candidates"] and process["best"] == sequential["best"]
    assert process["spent"]["arms"] == 12


def test_ctrl_c_then_resume(tmp_path: Path) -> None:
    cfg = search_config(
        tmp_path,
        n_repeats=1,
        parallel=3,
        budget={"candidates": 6},
        space={"algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-2]}},
    )
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {"max_steps": 4, "step_seconds": 0.1}}
    cfg["metadata"] = {"success_metric": "train/final_loss"}
    cfg["search"]["direction"] = "minimize"
    path = write(tmp_path, cfg)
    env = {**os.environ, "EVSYS_WORKSPACE": str(tmp_path / "ws")}
    cli = [sys.executable, "-m", "evsys_sdk.cli", "evolve", str(path)]
    # preexec_fn: Ctrl-C reaches it even when the tests run with SIGINT ignored (nohup nox &)
    proc = subprocess.Popen(
        cli, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    log = tmp_path / "out"
    while not list(log.glob("search-*/c0001/arm_result.json")):  # the 2nd of the first 3 jobs done
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and f"evsys evolve {path} --resume" in err, err
    db = LocalStore(tmp_path / "ws" / "evsys.db")
    assert db.list_experiments()[0]["status"] == "cancelled"
    scored = db.query("SELECT 1 FROM search_events WHERE kind = 'scored'")
    assert 1 <= len(scored) <= 2  # c0000 ended and its place was refilled; c0001 maybe; the rest in flight
    done = subprocess.run([*cli, "--resume"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming 'evo'" in done.stderr and "[6/6]" in done.stderr
    runs = db.query("SELECT id, name, status FROM runs")
    assert len(runs) == len({r["name"] for r in runs}) == 6 and {r["status"] for r in runs} == {"completed"}
    for run in runs:  # every arm's curve once, the re-recorded arms of the interrupted generation included
        assert [r["step"] for r in db.step_metrics(run["id"], "train")] == [1, 2, 3, 4], run["name"]


def test_every_eval_is_charged() -> None:
    from evsys_sdk.search.engine import _arm_cost
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.results import ArmResult, EvalResult

    run = RunConfig.model_validate({"name": "a", "model": {"name": "m"}, "algorithm": {"kind": "sft"}})
    evals = [
        EvalResult("val", None, {"n_tasks": 5}, eval_seconds=0.5, step=10),  # in the loop: inside train time
        EvalResult("test", None, {"n_tasks": 20}, eval_seconds=2.0),
        EvalResult("hard", None, {"n_tasks": 10}, eval_seconds=3.0),
    ]
    arm = ArmResult("a", run, "completed", metrics={"total_steps": 7.0}, evals=evals, train_seconds=4.0)
    arm.set_primary()  # the primary eval's seconds alone would undercount
    assert _arm_cost(arm, {"hard": 4}) == {"seconds": 9.0, "train_steps": 7, "inference_calls": 5 + 20 + 40}


def test_resume_from_every_crash_point_of_the_journal(tmp_path: Path, host: Any) -> None:
    """The journal is append-only, so a crash leaves a prefix of it: resuming from any prefix (here with
    generations that needed several asks, as rejections force) gives the uninterrupted search."""

    from evsys_sdk.plugins.registry import registry

    registry("proposer").add(_Invalid)
    cfg = search_config(tmp_path, proposer={"kind": "invalid_every_other"}, budget={"candidates": 6}, parallel=3)
    full_db = tmp_path / "full.db"
    reference = evolve(cfg, store=LocalStore(full_db)).to_json()
    assert reference["rejected"]  # some generations took more than one ask
    crashes = list(search_kit.crashed_copies(full_db, tmp_path))
    assert len(crashes) > 10
    for k, db in crashes:
        resumed = evolve(cfg, resume=True, store=db).to_json()
        assert resumed["candidates"] == reference["candidates"], k
        assert resumed["rejected"] == reference["rejected"] and resumed["best"] == reference["best"], k
        assert resumed["spent"]["arms"] == reference["spent"]["arms"], k


def test_space_auto_reads_the_families_search_hints(tmp_path: Path) -> None:
    cfg = search_config(tmp_path, space="auto", n_repeats=1, budget={"candidates": 3})
    cfg["run"]["algorithm"] = {"kind": "sft", "params": {"max_steps": 2}}
    cfg["metadata"] = {"success_metric": "train/final_loss"}
    cfg["search"]["direction"] = "minimize"
    result = evolve(cfg)
    axes = set(result.candidates[0].patch)
    assert {"algorithm.params.learning_rate", "algorithm.params.lora_rank", "algorithm.params.num_epochs"} <= axes
    assert not any(a.endswith((".seed", ".step_seconds")) for a in axes)  # hinted never to vary, or not bounded
    assert [c.status for c in result.candidates] == ["scored"] * 3


def test_pareto_selection_draws_parents_from_the_front(tmp_path: Path, host: Any) -> None:
    from evsys_sdk.search.engine import Candidate
    from evsys_sdk.search.proposers import MutateProposer

    def cand(cid: str, mean: float, seconds: float) -> Candidate:
        return Candidate(cid, [], "t", {}, None, mean=mean, status="scored", seconds=seconds)  # type: ignore[arg-type]

    pool = [cand("fast", 0.5, 1.0), cand("good", 0.9, 5.0), cand("worse", 0.4, 3.0), cand("slow", 0.9, 9.0)]
    proposer = MutateProposer(selection="pareto")
    assert [c.id for c in proposer._front(pool)] == ["fast", "good"]
    result = evolve(search_config(tmp_path, proposer={"kind": "mutate", "params": {"selection": "pareto"}}))
    assert any(c.operator in ("mutate", "crossover") for c in result.candidates)


def test_full_schema_lists_the_proposers() -> None:
    from evsys_sdk.loading.schema import full_schema

    variants = full_schema()["$defs"]["ProposerSpec"]["oneOf"]
    assert {"mutate", "random"} <= {v["properties"]["kind"]["const"] for v in variants}  # and plugins' proposers


def test_ctrl_c_between_an_arms_row_and_its_journal_event_leaves_no_duplicate(tmp_path: Path) -> None:
    """The run row and the journal event naming it commit together: interrupted between the two, the
    resumed generation re-records the arm under one row, never a second."""
    from evsys_sdk.search.records import ArmRecords, Journal

    store = LocalStore(tmp_path / "evsys.db")
    eid = store.create_experiment(experiment_name="evo")["id"]
    journal = Journal(store, eid)
    journal.append(("start", {"name": "evo"}))

    def interrupted(*events: Any) -> None:
        raise KeyboardInterrupt

    journal.append = interrupted  # type: ignore[method-assign]
    for create in (lambda r: r.create_group(eid, "c0000"), lambda r: r.create_run(experiment_id=eid, name="c0000")):
        with pytest.raises(KeyboardInterrupt):
            create(ArmRecords(store, eid, journal))
    resumed = ArmRecords(store, eid, Journal(store, eid))
    group = resumed.create_group(eid, "c0000")["id"]
    run = resumed.create_run(experiment_id=eid, name="c0000", group_id=group)["id"]
    assert resumed.create_run(experiment_id=eid, name="c0000", group_id=group)["id"] == run
    assert [(r["id"], r["group_id"]) for r in store.experiment_runs(eid)] == [(run, group)]
    assert [g["id"] for g in store.experiment_groups(eid)] == [group]
