from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from evsys_sdk.cli.main import main


def write_config(tmp_path: Path, bench: Path, **fields: Any) -> str:
    run = {
        "name": "arm",
        "model": {"name": "m"},
        "backend": {"kind": "mock"},
        "data": {"source_kind": "jsonl", "path": str(bench / "tasks.jsonl")},
        "algorithm": {"kind": "sft", "params": {"batch_size": 1, "lora_rank": 32}},
    }
    cfg = {
        "name": "cli_exp",
        "output_dir": str(tmp_path / "out"),
        "run": run,
        "n_repeats": 2,
        "metadata": {
            "success_metric": "qa.pass_rate",
            "hypothesis": "h",
            "benchmark": {"name": "qa", "path": str(bench)},
        },
        **fields,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


@pytest.fixture
def bench(tmp_path: Path) -> Path:
    folder = tmp_path / "qa"
    folder.mkdir()
    rows = [
        {
            "task_id": f"t{i}",
            "instruction": f"q{i}",
            "verifier": {"kind": "in_process", "fn_name": "exact_match", "expected": f"a{i}"},
        }
        for i in range(6)
    ]
    (folder / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_run_records_and_runs_lists_shows_plots(tmp_path: Path, bench: Path, capsys: Any) -> None:
    assert main(["runs"]) == 1
    assert "no experiments recorded yet" in capsys.readouterr().err
    assert main(["run", write_config(tmp_path, bench)]) == 0
    out = capsys.readouterr().out
    assert "arm__s42" in out and "arm__s43" in out and "groups (qa.pass_rate, mean +- std, 95% CI):" in out
    assert "best arm: arm__s4" in out and "conclusion: Best arm: arm__s4" in out
    assert main(["runs"]) == 0
    listing = capsys.readouterr().out
    assert listing.splitlines()[1].startswith("cli_exp") and "completed  2" in listing
    assert main(["runs", "show", "cli_exp"]) == 0
    shown = capsys.readouterr().out
    assert "hypothesis: h" in shown and "eval qa" in shown and "group arm: qa.pass_rate" in shown
    assert main(["runs", "show", "cli_ex"]) == 1
    assert "did you mean 'cli_exp'?" in capsys.readouterr().err


@pytest.mark.plot
def test_runs_plot(tmp_path: Path, bench: Path, capsys: Any) -> None:
    assert main(["run", write_config(tmp_path, bench)]) == 0
    png = tmp_path / "loss.png"
    assert main(["runs", "plot", "cli_exp", "-o", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["runs", "plot", "cli_exp", "--metric", "nope", "-o", str(png)]) == 1


def test_run_json_output_and_no_store(tmp_path: Path, bench: Path, capsys: Any) -> None:
    out_file = tmp_path / "summary.json"
    assert main(["run", write_config(tmp_path, bench), "--no-store", "--json", "-o", str(out_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out_file.read_text())
    assert [r["run_id"] for r in printed] == ["arm__s42", "arm__s43"]
    assert set(printed[0]) == {"run_id", "status", "metrics", "error"} and "qa/pass_rate" in printed[0]["metrics"]
    assert not (tmp_path / "workspace" / "evsys.db").exists()


def test_continual_summary_shows_the_stage_matrix(tmp_path: Path, bench: Path, capsys: Any) -> None:
    data = {"source_kind": "jsonl", "path": str(bench / "tasks.jsonl")}
    path = write_config(tmp_path, bench, n_repeats=1, continual={"datasets": [data, data]})
    assert main(["run", path]) == 0
    out = capsys.readouterr().out
    assert "stage x benchmark (pass_rate):" in out and "arm_stage0" in out and "arm_stage1" in out


def test_benchmark_upload(tmp_path: Path, bench: Path, capsys: Any) -> None:
    assert main(["benchmark", "upload", str(bench)]) == 0
    out = capsys.readouterr().out
    payload = json.loads(out.split("\n\n")[0])
    assert (
        payload["name"] == "qa"
        and payload["version"] == 1
        and payload["status"] == "created"
        and payload["n_tasks"] == 6
    )
    assert f"# metadata.benchmark.id: {payload['benchmark_id']}" in out
    (bench / "tasks.jsonl").write_text((bench / "tasks.jsonl").read_text().splitlines()[0] + "\n")
    assert main(["benchmark", "upload", str(bench)]) == 0
    assert json.loads(capsys.readouterr().out.split("\n\n")[0])["version"] == 2
    assert main(["benchmark", "upload", str(tmp_path / "nope")]) == 1
    assert "benchmark dir not found" in capsys.readouterr().err


def test_init_project_and_new_experiment(tmp_path: Path, capsys: Any) -> None:
    root = tmp_path / "proj"
    assert main(["init-project", str(root)]) == 0
    assert capsys.readouterr().out.strip() == f"OK: scaffolded research project at {root}"
    for d in ("data/raw", "data/benchmark", "data/validation", "experiments"):
        assert (root / d / ".gitkeep").exists()
    assert 'name = "proj"' in (root / "pyproject.toml").read_text() and ".evsys/" in (root / ".gitignore").read_text()
    (root / "README.md").write_text("mine")
    assert main(["init-project", str(root)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert main(["init-project", str(root), "--force"]) == 0
    assert (root / "README.md").read_text() == "mine"  # never overwritten
    capsys.readouterr()
    assert main(["new-experiment", "My Idea!", "--project-root", str(root), "--date", "20260102"]) == 0
    folder = root / "experiments" / "20260102_my_idea"
    assert capsys.readouterr().out.strip() == f"OK: scaffolded experiment at {folder}"
    cfg = yaml.safe_load((folder / "config.yaml").read_text())
    assert (
        cfg["name"] == "my_idea"
        and cfg["run"]["algorithm"]["kind"] == "sft"
        and cfg["run"]["backend"]["kind"] == "mock"
    )
    assert "Experiment.from_yaml" in (folder / "run.py").read_text()
    assert main(["new-experiment", "my idea", "--project-root", str(root), "--date", "20260102"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["new-experiment", "x", "--date", "2026-01-02"]) == 1
    assert "--date '2026-01-02' is not in YYYYMMDD format" in capsys.readouterr().err
    assert main(["new-experiment", "!!!", "--project-root", str(root)]) == 1
    assert "reduces to empty" in capsys.readouterr().err


def test_scaffolded_experiment_runs_once_data_exists(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "proj"
    main(["init-project", str(root)])
    main(["new-experiment", "first", "--project-root", str(root), "--date", "20260102"])
    folder = root / "experiments" / "20260102_first"
    data = root / "data" / "datasets" / "<name>" / "v1"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    monkeypatch.chdir(root)
    assert main(["run", str(folder / "config.yaml")]) == 0
    assert "1/1 arms completed." in capsys.readouterr().out


def test_runs_show_json_is_the_whole_record(tmp_path: Path, bench: Path, capsys: Any) -> None:
    assert main(["run", write_config(tmp_path, bench)]) == 0
    capsys.readouterr()
    assert main(["runs", "show", "cli_exp", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    exp = record["experiment"]
    assert exp["name"] == "cli_exp" and exp["status"] == "completed" and exp["hypothesis"] == "h"
    assert exp["config"]["metadata"]["success_metric"] == "qa.pass_rate" and exp["conclusion"].startswith("Best arm:")
    assert [a["name"] for a in record["arms"]] == ["arm__s42", "arm__s43"]
    arm = record["arms"][0]
    assert arm["status"] == "completed" and arm["seed"] == 42 and arm["group"] == "arm"
    assert arm["evals"][0]["name"] == "qa" and "pass_rate" in arm["evals"][0]["metrics"]
    assert "qa/pass_rate" in arm["metrics"]
    group = record["groups"]["arm"]
    scores = [a["evals"][0]["metrics"]["pass_rate"] for a in record["arms"]]
    assert (
        group["n"] == 2
        and group["mean"] == pytest.approx(sum(scores) / 2)
        and group["arms"] == ["arm__s42", "arm__s43"]
    )
    assert group["ci95_low"] <= group["mean"] <= group["ci95_high"]
    assert record["baselines"] == []


def test_summaries_print_counts_as_integers() -> None:
    from evsys_sdk.cli.report import fmt

    assert (fmt(30.0), fmt(0.53333333), fmt(2e-5), fmt(123456.7), fmt(None), fmt(3)) == (
        "30",
        "0.5333",
        "2e-05",
        "1.235e+05",
        "-",
        "3",
    )
