"""Records you can trust, read back from the store: baselines beside the arms, the group-mean conclusion,
metadata.expect, resume continuing one readable record, and runs plot after --resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.cli.main import main
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.tracking.records import BASELINE_KIND, load_result
from evsys_sdk.tracking.store import LocalStore, workspace_root

pytestmark = pytest.mark.timeout(120)

QUESTIONS = {f"q{i}": f"a{i}" for i in range(12)}


@pytest.fixture
def bench_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "bench"
    folder.mkdir()
    rows = [
        {"task_id": q, "instruction": q, "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": a}}
        for q, a in QUESTIONS.items()
    ]
    (folder / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def run(name: str, **params: Any) -> dict[str, Any]:
    rows = [{"prompt": q, "completion": a} for q, a in list(QUESTIONS.items())[:8]]
    return {
        "name": name,
        "model": {"name": "m"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "in_memory", "rows": rows},
        "algorithm": {"kind": "sft", "params": {"batch_size": 2, "num_epochs": 1, **params}},
    }


def config(tmp_path: Path, bench_dir: Path, **fields: Any) -> ExperimentConfig:
    meta = {"success_metric": "qa.pass_rate", "benchmark": {"name": "qa", "path": str(bench_dir)}}
    return ExperimentConfig.model_validate(
        {
            "name": "rec",
            "output_dir": str(tmp_path / "out"),
            "runs": [run("low", lora_rank=2), run("high", lora_rank=64)],
            **fields,
            "metadata": {**meta, **fields.pop("metadata", {})},
        }
    )


def store() -> LocalStore:
    return LocalStore(workspace_root() / "evsys.db")


def test_baselines_are_stored_beside_the_arms(tmp_path: Path, bench_dir: Path, capsys: Any) -> None:
    models = ["mock", {"kind": "mock", "params": {"template": "a1"}}]
    bench = {"name": "qa", "path": str(bench_dir), "models": models}
    result = Experiment(config(tmp_path, bench_dir, metadata={"benchmark": bench}), store=store()).run()
    db = store()
    runs = db.experiment_runs(result.experiment_id or "")
    baselines = [r for r in runs if r["recipe_kind"] == BASELINE_KIND]
    assert [r["name"] for r in baselines] == ["baseline mock", "baseline mock #2"]
    assert [db.run_evals(r["id"])[0]["metrics"]["pass_rate"] for r in baselines] == [0.0, 1 / 12]
    back = load_result(db, db.find_experiment("rec") or {})
    assert [e.metrics for e in back.baselines] == [e.metrics for e in result.baselines]
    assert [a.name for a in back.arms] == ["low", "high"]  # baselines are not arms
    assert db.list_experiments()[0]["n_runs"] == 2
    capsys.readouterr()
    assert main(["runs", "show", "rec"]) == 0
    shown = capsys.readouterr().out
    assert "baseline mock  eval qa" in shown and "pass_rate=0.08333" in shown
    assert main(["runs", "show", "rec", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert [(b["model"], b["name"], b["metrics"]["pass_rate"]) for b in record["baselines"]] == [
        ("mock", "qa", 0.0),
        ("mock", "qa", 1 / 12),
    ]


def test_seeded_groups_conclude_by_mean_with_ci(tmp_path: Path, bench_dir: Path) -> None:
    result = Experiment(config(tmp_path, bench_dir, n_repeats=3, base_seed=1), store=store()).run()
    means = {g: s.mean for g, s in result.group_stats().items()}
    assert result.best_group == max(means, key=lambda g: means[g]) == "high"
    assert result.best_score == pytest.approx(means["high"])
    assert result.best_arm is not None and result.best_arm.group_name == "high"
    assert result.best_arm.score("qa.pass_rate") == max(a.score("qa.pass_rate") or 0 for a in result.arms[3:])
    assert result.conclusion.startswith(f"Best arm: {result.best_arm.name} at qa.pass_rate=")
    assert "6/6 arms completed. Best group: high " in result.conclusion
    assert "(n=3) on qa.pass_rate (mean +- 95% CI) vs runner-up low " in result.conclusion
    assert "(Welch's t-test, p=" in result.conclusion
    exp = store().find_experiment("rec")
    assert (
        exp is not None and exp["best_score"] == pytest.approx(means["high"]) and exp["conclusion"] == result.conclusion
    )
    record = load_result(store(), exp).to_json()
    assert record["experiment"]["best_group"] == "high" and record["groups"]["high"]["n"] == 3


def test_expect_is_judged_and_checked_before_any_arm(tmp_path: Path, bench_dir: Path) -> None:
    expect = {"metric": "train/final_loss", "better": "lower", "of": "lora_rank"}
    cfg = config(tmp_path, bench_dir, n_repeats=3, metadata={"expect": expect, "success_metric": "train/final_loss"})
    result = Experiment(cfg).run()
    assert result.best_group == "high"  # lower is better: the lowest mean final loss
    assert "Expected lower train/final_loss with higher lora_rank: supported (" in result.conclusion
    bad = config(tmp_path, bench_dir, metadata={"expect": {"metric": "m", "better": "smaller"}})
    with pytest.raises(ConfigError, match=r"metadata\.expect\.better"):
        Experiment(bad).run()


def test_expect_error_names_the_file_line(tmp_path: Path, bench_dir: Path) -> None:
    import yaml

    from evsys_sdk.loading.yaml_loader import load_yaml

    data = config(tmp_path, bench_dir).model_dump(mode="json", exclude_none=True)
    data["metadata"]["expect"] = {"metric": "x", "better": "up"}
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        Experiment(load_yaml(path)).run()
    assert str(path) in str(info.value) and "metadata.expect.better" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_resume_is_one_readable_record_with_every_curve(tmp_path: Path, bench_dir: Path) -> None:
    cfg = config(tmp_path, bench_dir)
    first = Experiment(cfg, store=store()).run()
    # "high" was interrupted after training: its run_result.json is there, but no arm record.
    (tmp_path / "out" / "high" / "arm_result.json").unlink()
    again = Experiment(cfg, store=store(), resume=True).run()
    assert [(a.name, a.resumed) for a in again.arms] == [("low", True), ("high", False)]
    db = store()
    newest = db.find_experiment("rec")
    assert newest is not None and newest["id"] == again.experiment_id
    assert newest["extra"]["resumed_from"] == first.experiment_id
    old = db.find_experiment(first.experiment_id or "")
    assert old is not None and old["extra"]["resumed_as"] == again.experiment_id
    runs = {r["name"]: r for r in db.experiment_runs(again.experiment_id or "")}
    for name in ("low", "high"):  # the resumed arm's curve and eval are in the new record too
        assert [r["step"] for r in db.step_metrics(runs[name]["id"], "train")] == [1, 2, 3, 4]
        assert db.run_evals(runs[name]["id"])[0]["name"] == "qa"
    assert load_result(db, newest).arms[0].eval("qa") is not None


def test_resume_reruns_an_arm_whose_run_result_is_missing_or_incomplete(tmp_path: Path, bench_dir: Path) -> None:
    cfg = config(tmp_path, bench_dir)
    Experiment(cfg).run()
    (tmp_path / "out" / "low" / "run_result.json").unlink()
    record = tmp_path / "out" / "high" / "run_result.json"
    record.write_text(record.read_text()[:40])  # cut off mid-write
    again = Experiment(cfg, resume=True).run()
    assert [a.resumed for a in again.arms] == [False, False]
    third = Experiment(cfg, resume=True).run()
    assert [a.resumed for a in third.arms] == [True, True]
    data = json.loads(record.read_text())
    data["status"] = "failed"
    record.write_text(json.dumps(data))
    assert [a.resumed for a in Experiment(cfg, resume=True).run().arms] == [True, False]


@pytest.mark.plot
def test_runs_plot_works_after_resume(tmp_path: Path, bench_dir: Path, capsys: Any) -> None:
    cfg = config(tmp_path, bench_dir)
    Experiment(cfg, store=store()).run()
    Experiment(cfg, store=store(), resume=True).run()  # every arm resumed
    png = tmp_path / "loss.png"
    assert main(["runs", "plot", "rec", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_open_store_and_find_experiment_are_the_public_way_in(tmp_path: Path) -> None:
    import evsys_sdk
    from evsys_sdk.base.errors import EvsysError

    with pytest.raises(EvsysError, match=r"no experiments recorded yet .*evsys.db does not exist"):
        evsys_sdk.open_store(tmp_path / "ws")
    LocalStore(tmp_path / "ws" / "evsys.db").create_experiment(experiment_name="lr_sweep")
    store = evsys_sdk.open_store(tmp_path / "ws")
    found = evsys_sdk.find_experiment(store, "lr_sweep")
    assert evsys_sdk.find_experiment(store, found["id"])["name"] == "lr_sweep"
    with pytest.raises(EvsysError, match=r"^no experiment named or with id 'lr_sweeq'; did you mean 'lr_sweep'\?$"):
        evsys_sdk.find_experiment(store, "lr_sweeq")
