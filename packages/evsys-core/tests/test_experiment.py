from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.builtins.mock import read_checkpoint
from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.spec.protocols import RunResult
from evsys_sdk.spec.results import ArmResult, EvalResult, ExperimentResult
from evsys_sdk.tracking.store import LocalStore

QUESTIONS = {f"q{i}": f"a{i}" for i in range(12)}


def tasks(names: list[str]) -> list[dict[str, Any]]:
    return [
        {
            "task_id": q,
            "instruction": q,
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": QUESTIONS[q]},
            "metadata": {"half": "low" if int(q[1:]) < 6 else "high"},
        }
        for q in names
    ]


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    (folder / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in tasks(list(QUESTIONS))))
    (folder / "metadata.yaml").write_text("name: qa\n")
    return folder


def run_dict(name: str = "arm", **params: Any) -> dict[str, Any]:
    return {
        "name": name,
        "model": {"name": "tiny"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "in_memory", "rows": tasks(list(QUESTIONS)[:8])},
        "algorithm": {"kind": "sft", "params": {"batch_size": 2, "num_epochs": 2, **params}},
    }


def config(tmp_path: Path, **fields: Any) -> ExperimentConfig:
    base: dict[str, Any] = {"name": "exp", "output_dir": str(tmp_path / "out")}
    if not any(k in fields for k in ("run", "runs", "matrix")):
        base["run"] = run_dict()
    return load_yaml({**base, **fields})


def test_single_run_with_test_benchmark(tmp_path: Path, bench_dir: Path) -> None:
    meta = {
        "success_metric": "test.pass_rate",
        "benchmark": [{"name": "test", "path": str(bench_dir), "tags": ["test"], "breakdown_keys": ["half"]}],
    }
    result = Experiment(config(tmp_path, metadata=meta)).run()
    (arm,) = result.arms
    assert arm.status == "completed" and arm.error is None and arm.train_seconds is not None
    test = arm.eval("test")
    assert test is not None and test.step is None and test.tags == ["test"]
    assert 0 < test.metrics["pass_rate"] <= 8 / 12  # only trained questions can be recalled
    assert arm.eval_metrics == test.metrics and set(test.breakdowns["half"]) == {"low", "high"}
    assert result.best_arm is arm and result.best_score == test.metrics["pass_rate"]
    assert result.conclusion == (
        f"Best arm: arm at test.pass_rate={result.best_score:.4f}. 1/1 arms completed. "
        "One seed per arm: no variance is known."
    )
    assert result.status == "completed"


def test_repeats_groups_and_statistics(tmp_path: Path, bench_dir: Path) -> None:
    store = LocalStore(tmp_path / "db.sqlite")
    cfg = config(
        tmp_path,
        runs=[run_dict("low", lora_rank=2), run_dict("high", lora_rank=64)],
        n_repeats=3,
        base_seed=10,
        metadata={"success_metric": "qa.pass_rate", "benchmark": {"name": "qa", "path": str(bench_dir)}},
    )
    result = Experiment(cfg, store=store).run()
    assert [a.name for a in result.arms] == ["low__s10", "low__s11", "low__s12", "high__s10", "high__s11", "high__s12"]
    assert [a.run_config.seed for a in result.arms] == [10, 11, 12] * 2
    assert {a.group_name for a in result.arms} == {"low", "high"} and all(a.group_id for a in result.arms)
    stats = result.group_stats()
    scores = [a.score("qa.pass_rate") for a in result.arms[3:]]
    assert stats["high"].n == 3 and stats["high"].mean == pytest.approx(sum(scores) / 3)  # type: ignore[arg-type]
    assert stats["high"].ci95_low <= stats["high"].mean <= stats["high"].ci95_high
    assert stats["high"].mean > stats["low"].mean  # a higher rank recalls more on mock
    # everything is in the store
    exp = store.find_experiment("exp")
    assert exp is not None and exp["status"] == "completed" and exp["best_score"] == result.best_score
    runs = store.experiment_runs(exp["id"])
    assert len(runs) == 6 and {r["group_name"] for r in runs} == {"low", "high"}
    assert all(r["status"] == "completed" for r in runs)
    assert store.run_evals(runs[0]["id"])[0]["metrics"]["pass_rate"] == result.arms[0].score("qa.pass_rate")
    assert len(store.step_metrics(runs[0]["id"], "train")) == 8  # 8 rows, batch 2, 2 epochs


def test_failure_isolation_and_conclusion(tmp_path: Path) -> None:
    bad = {**run_dict("bad"), "backend": {"kind": "mock", "params": {"fail_on_prepare": True}}}
    cfg = config(
        tmp_path,
        runs=[run_dict("a"), bad, run_dict("c")],
        metadata={"success_metric": "train/final_loss", "expect": {"metric": "train/final_loss", "better": "lower"}},
    )
    result = Experiment(cfg).run()
    assert [a.status for a in result.arms] == ["completed", "failed", "completed"]
    assert result.arms[1].error == "RuntimeError: MockBackend asked to fail"
    assert "2/3 arms completed. Failed: bad. One seed per arm: no variance is known" in result.conclusion
    all_bad = config(tmp_path, runs=[{**bad, "name": "x"}, {**bad, "name": "y"}])
    assert Experiment(all_bad).run().conclusion == "All 2 arms failed."


def test_custom_train_fn_and_its_errors(tmp_path: Path) -> None:
    seen: list[str] = []

    def train_fn(cfg: ExperimentConfig) -> list[RunResult]:
        assert cfg.run is not None and cfg.runs is None and cfg.n_repeats == 1
        seen.append(cfg.run.name)
        if cfg.run.name == "empty":
            return []
        return [RunResult(cfg.run.name, "completed" if cfg.run.name == "ok" else "failed", {"m": 1.0}, error=None)]

    result = Experiment(
        config(tmp_path, runs=[run_dict("ok"), run_dict("empty"), run_dict("no")]), train_fn=train_fn
    ).run()
    assert seen == ["ok", "empty", "no"]
    assert result.arms[0].metrics == {"m": 1.0}
    assert result.arms[1].error == "RuntimeError: train_fn returned no results for arm 'empty'"
    assert result.arms[2].error == "train_fn status=failed"


class FlakyStore(LocalStore):
    """Every write raises: bookkeeping failures must never fail an arm or the experiment."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("create_", "update_", "log_", "add_")):

            def boom(*args: Any, **kwargs: Any) -> Any:
                raise ConnectionError("store down")

            return boom
        return super().__getattribute__(name)


def test_store_failures_are_best_effort(tmp_path: Path, bench_dir: Path) -> None:
    cfg = config(tmp_path, metadata={"benchmark": {"path": str(bench_dir)}}, n_repeats=2)
    result = Experiment(cfg, store=FlakyStore(tmp_path / "db.sqlite")).run()
    assert result.status == "completed" and all(a.status == "completed" for a in result.arms)
    assert result.experiment_id is None and result.arms[0].eval(str(bench_dir)) is not None


def test_in_loop_validation_records_curves(tmp_path: Path, bench_dir: Path) -> None:
    store = LocalStore(tmp_path / "db.sqlite")
    meta = {
        "benchmark": [
            {"name": "val", "path": str(bench_dir), "tags": ["val"], "run_every": 2},
            {"name": "test", "path": str(bench_dir), "tags": ["test"]},
        ]
    }
    (arm,) = Experiment(config(tmp_path, metadata=meta), store=store).run().arms
    live = [e for e in arm.evals if e.name == "val"]
    assert [e.step for e in live] == [2, 4, 6, 8]  # 8 steps, every 2
    rates = [e.metrics["pass_rate"] for e in live]
    assert rates == sorted(rates) and rates[-1] > 0  # the mock model recalls more as training goes on
    assert arm.eval("val") is live[-1] and arm.eval("val", step=4) is live[1] and arm.eval("val", step=3) is None
    assert arm.eval_metrics == arm.eval("test").metrics  # type: ignore[union-attr]
    lines = [json.loads(x) for x in (tmp_path / "out" / "arm" / "logs" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "val/val/pass_rate" in r["metrics"]] == [2, 4, 6, 8]
    (run,) = store.experiment_runs(store.list_experiments()[0]["id"])
    assert [r["step"] for r in store.step_metrics(run["id"], "val")] == [2, 4, 6, 8]
    assert sorted(e["step"] or 0 for e in store.run_evals(run["id"])) == [0, 2, 4, 6, 8]


def test_continual_chains_state_and_reports_the_matrix(tmp_path: Path, bench_dir: Path) -> None:
    parts = [list(QUESTIONS)[:4], list(QUESTIONS)[4:8], list(QUESTIONS)[8:]]
    datasets = [{"source_kind": "in_memory", "rows": tasks(p)} for p in parts]
    run = run_dict("chain", lora_rank=64, num_epochs=3)
    del run["data"]
    meta = {"success_metric": "pass_rate", "benchmark": [{"name": "qa", "path": str(bench_dir)}]}
    result = Experiment(config(tmp_path, run=run, continual={"datasets": datasets}, metadata=meta)).run()
    names = [a.name for a in result.arms]
    assert names == ["chain_stage0", "chain_stage1", "chain_stage2"]
    assert [a.stage for a in result.arms] == [0, 1, 2]
    assert result.arms[1].run_config.tags == ["continual", "stage:1"]
    assert result.arms[0].run_config.model.init_from_checkpoint is None
    for prev, arm in zip(result.arms, result.arms[1:], strict=False):
        assert arm.run_config.model.init_from_checkpoint == prev.run_result.artifacts["state-final"]  # type: ignore[union-attr]
        final = read_checkpoint(arm.run_result.artifacts["final_checkpoint"])  # type: ignore[union-attr]
        assert final["init_from"] == prev.run_result.artifacts["state-final"]  # type: ignore[union-attr]
    matrix = result.stage_matrix()
    assert list(matrix) == names and all(set(row) == {"qa"} for row in matrix.values())
    assert matrix["chain_stage2"]["qa"] > 0


def test_continual_repeats_group_per_stage_and_stop_at_failure(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "db.sqlite")
    datasets = [
        {"source_kind": "in_memory", "rows": tasks(["q0"])},
        {"dataset_id": "no-such-dataset"},  # resolved (and failing) only when its stage starts
        {"source_kind": "in_memory", "rows": tasks(["q1"])},
    ]
    run = {**run_dict("c"), "seed": 5}
    del run["data"]
    result = Experiment(config(tmp_path, run=run, continual={"datasets": datasets}, n_repeats=2), store=store).run()
    assert [a.name for a in result.arms] == ["c_stage0__s5", "c_stage1__s5", "c_stage0__s6", "c_stage1__s6"]
    assert [a.status for a in result.arms] == ["completed", "failed"] * 2  # stage 2 never runs
    assert [a.group_name for a in result.arms] == ["c_stage0", "c_stage1"] * 2
    exp = store.list_experiments()[0]
    assert [g["name"] for g in store.experiment_groups(exp["id"])] == ["c_stage0", "c_stage1", "c_stage2"]


def test_resume_skips_completed_arms_with_the_same_config(tmp_path: Path, bench_dir: Path) -> None:
    meta = {"benchmark": {"name": "qa", "path": str(bench_dir)}}
    cfg = config(tmp_path, runs=[run_dict("a"), run_dict("b")], metadata=meta)
    first = Experiment(cfg).run()
    (tmp_path / "out" / "b" / "arm_result.json").unlink()  # as if b had been interrupted
    calls: list[str] = []

    def counting(single: ExperimentConfig) -> list[RunResult]:
        from evsys_sdk.run.runner import run_experiment

        assert single.run is not None
        calls.append(single.run.name)
        return run_experiment(single)

    again = Experiment(cfg, resume=True, train_fn=counting).run()
    assert calls == ["b"]
    assert again.arms[0].resumed and not again.arms[1].resumed
    assert again.arms[0].eval("qa").metrics == first.arms[0].eval("qa").metrics  # type: ignore[union-attr]
    changed = config(tmp_path, runs=[run_dict("a", lora_rank=2), run_dict("b")], metadata=meta)
    calls.clear()
    Experiment(changed, resume=True, train_fn=counting).run()
    assert calls == ["a"]  # a's config changed, b is complete


def test_interrupt_marks_the_arm_cancelled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evsys_sdk.builtins import mock

    store = LocalStore(tmp_path / "db.sqlite")
    real = mock.MockSFT._step_metrics

    def interrupt_b(self: Any, step: int, total: int) -> dict[str, float]:
        if self.config.lora_rank == 3:
            raise KeyboardInterrupt
        return real(self, step, total)

    monkeypatch.setattr(mock.MockSFT, "_step_metrics", interrupt_b)
    with pytest.raises(KeyboardInterrupt):
        Experiment(config(tmp_path, runs=[run_dict("a"), run_dict("b", lora_rank=3), run_dict("c")]), store=store).run()
    exp = store.list_experiments()[0]
    assert exp["status"] == "cancelled"
    assert [(r["name"], r["status"]) for r in store.experiment_runs(exp["id"])] == [
        ("a", "completed"),
        ("b", "cancelled"),
    ]


def test_baselines_are_scored_once(tmp_path: Path, bench_dir: Path) -> None:
    spec = {"name": "qa", "path": str(bench_dir), "models": ["mock", {"kind": "mock", "params": {"template": "a1"}}]}
    result = Experiment(config(tmp_path, runs=[run_dict("a"), run_dict("b")], metadata={"benchmark": spec})).run()
    assert len(result.baselines) == 2
    assert [e.metrics["pass_rate"] for e in result.baselines] == [0.0, 1 / 12]
    assert "baseline" in result.baselines[0].tags and "model:mock" in result.baselines[0].tags


def test_benchmark_spec_errors_before_any_arm(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metadata.benchmark\[0\].run_evry: unknown field; did you mean 'run_every'"):
        Experiment(config(tmp_path, metadata={"benchmark": [{"path": "x", "run_evry": 2}]})).run()
    with pytest.raises(ConfigError, match="metadata.benchmark.path: benchmark folder not found: "):
        Experiment(config(tmp_path, metadata={"benchmark": {"path": str(tmp_path / "nope")}})).run()
    with pytest.raises(ConfigError, match="No inference_client registered under 'claud'"):
        Experiment(config(tmp_path, metadata={"benchmark": {"path": "x", "models": ["claud"]}})).run()
    assert not (tmp_path / "out").exists()


def test_benchmark_by_name_from_the_local_store(tmp_path: Path, bench_dir: Path) -> None:
    from evsys_sdk.cli.benchmark_upload import upload_benchmark

    store = LocalStore(tmp_path / "db.sqlite")
    uploaded = upload_benchmark(store, bench_dir)
    assert (uploaded.name, uploaded.version, uploaded.status, uploaded.n_tasks) == ("qa", 1, "created", 12)
    assert upload_benchmark(store, bench_dir).status == "unchanged"
    result = Experiment(config(tmp_path, metadata={"benchmark": {"name": "qa"}}), store=store).run()
    assert result.arms[0].eval("qa") is not None


def test_callbacks_receive_every_event(tmp_path: Path, bench_dir: Path) -> None:
    cfg = config(
        tmp_path,
        callbacks=[{"kind": "jsonl"}],
        n_repeats=2,
        metadata={"benchmark": {"name": "qa", "path": str(bench_dir)}},
    )
    Experiment(cfg).run()
    events = [json.loads(x)["event"] for x in (tmp_path / "out" / "events.jsonl").read_text().splitlines()]
    assert events[0] == "experiment_start" and events[1] == "group_start" and events[-1] == "experiment_end"
    assert events.count("run_start") == events.count("run_end") == 2
    assert events.count("step_metrics") == 2 and events.count("benchmark_eval") == 2


@pytest.mark.tensorboard
def test_tensorboard_callback_writes_event_files(tmp_path: Path) -> None:
    Experiment(config(tmp_path, callbacks=[{"kind": "tensorboard"}])).run()
    assert list((tmp_path / "out" / "tensorboard" / "arm").glob("events.out.tfevents.*"))


def test_arm_result_score_and_serialisation() -> None:
    from evsys_sdk.spec.config import RunConfig

    run = RunConfig.model_validate(run_dict())
    arm = ArmResult(
        "a",
        run,
        "completed",
        metrics={"train/loss": 1.0, "x.y": 2.0},
        evals=[EvalResult("val", None, {"acc": 0.1}, step=3), EvalResult("test", "b1", {"acc": 0.5}, tags=["test"])],
    )
    arm.set_primary()
    assert arm.score("acc") == 0.5 and arm.score("val.acc") == 0.1 and arm.score("test.acc") == 0.5
    assert arm.score("x.y") == 2.0 and arm.score("nope.acc") is None and arm.score("train/loss") == 1.0
    again = ArmResult.from_json(json.loads(json.dumps(arm.to_json())))
    assert again.evals == arm.evals and again.run_config == run and again.score("val.acc") == 0.1
    result = ExperimentResult("e", "completed", [arm], arm, 0.5, "c")
    assert result.summary() == [
        {
            "run_id": "a",
            "status": "completed",
            "error": None,
            "metrics": {"train/loss": 1.0, "x.y": 2.0, "test/acc": 0.5},
        }
    ]


def test_benchmark_override_seam(tmp_path: Path) -> None:
    bench = Benchmark.from_iterable("given", tasks(["q0"]))
    (arm,) = Experiment(config(tmp_path), benchmark=bench).run().arms
    assert arm.eval("benchmark") is not None
