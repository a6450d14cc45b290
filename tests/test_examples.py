"""The experiment examples end to end through the installed CLI, and resume after a real Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, evsys

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.testing.executors import default_sigint

EXAMPLE_CONFIGS = sorted(
    str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*/*.yaml") if "name" in yaml.safe_load(p.read_text())
)


@pytest.mark.parametrize("config", EXAMPLE_CONFIGS)
def test_example_paths_mean_the_same_from_the_root_and_from_its_folder(
    config: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    from_root = load_yaml(config)
    monkeypatch.chdir((ROOT / config).parent)
    from_folder = load_yaml(Path(config).name)
    assert from_root.model_dump() == from_folder.model_dump()
    folder = (ROOT / config).parent
    project = folder if (folder / "pyproject.toml").exists() else ROOT  # examples/plugin is a project of its own
    assert from_root._root == project and Path(from_root.output_dir).is_relative_to(project)


def test_quickstart_from_its_own_folder_matches_the_root(repo_copy: Path) -> None:
    folder = repo_copy / "examples" / "quickstart"
    check = evsys("validate", "config.yaml", "--deep", cwd=folder)
    assert check.returncode == 0, check.stderr
    assert check.stdout == (
        f"OK: config.yaml parses and validates (deep); relative paths resolve against {repo_copy.resolve()}\n"
    )
    run = evsys("run", "config.yaml", "-o", "results.json", cwd=folder)
    assert run.returncode == 0, run.stderr and "4/4 arms completed." in run.stdout
    results = json.loads((folder / "results.json").read_text())
    for r in results:  # the same output folder as `evsys run examples/quickstart/config.yaml` from the root
        assert (repo_copy / "outputs" / "quickstart" / r["run_id"] / "run_result.json").exists()
    assert results[0]["metrics"]["eval/exact_match"] == 5 / 24  # the same 24 rows


def test_sweep_with_seeds_and_benchmarks(repo_copy: Path) -> None:
    run = evsys("run", "examples/experiment/config.yaml", cwd=repo_copy)
    assert run.returncode == 0, run.stderr
    for needle in (
        "capitals__lora_rank4__s1",
        "capitals__lora_rank16__s3",
        "groups (test.pass_rate",
        "best arm: capitals__lora_rank16",
        "conclusion: Best arm:",
        "6/6 arms completed.",
    ):
        assert needle in run.stdout
    listed = evsys("runs", cwd=repo_copy)
    assert listed.returncode == 0 and "capitals_sweep" in listed.stdout and "completed  6" in listed.stdout
    shown = evsys("runs", "show", "capitals_sweep", cwd=repo_copy)
    assert "eval val @ step 5" in shown.stdout and "eval test" in shown.stdout


def test_continual_example_prints_the_stage_matrix(repo_copy: Path) -> None:
    run = evsys("run", "examples/continual/config.yaml", cwd=repo_copy)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    start = lines.index("stage x benchmark (pass_rate):")
    assert lines[start + 1].split() == ["stage", "capitals", "squares", "opposites"]
    rows = {line.split()[0]: [float(x) for x in line.split()[1:]] for line in lines[start + 2 : start + 5]}
    assert list(rows) == ["skills_stage0", "skills_stage1", "skills_stage2"]
    assert rows["skills_stage0"][1:] == [0.0, 0.0]  # later skills are unknown before their stage
    assert rows["skills_stage2"][0] < rows["skills_stage0"][0]  # and capitals are partly forgotten


def test_ctrl_c_then_resume_reruns_only_unfinished_arms(tmp_path: Path) -> None:
    rows = [{"prompt": f"p{i}", "answer": f"a{i}"} for i in range(4)]
    runs = [
        {
            "name": f"arm{i}",
            "model": {"name": "m"},
            "backend": {"kind": "mock"},
            "data": {"source_kind": "in_memory", "rows": rows},
            "algorithm": {"kind": "sft", "params": {"max_steps": 4, "step_seconds": 0.25}},
        }
        for i in range(4)
    ]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"name": "slow", "output_dir": "out", "runs": runs}))
    env = {**os.environ, "EVSYS_WORKSPACE": str(tmp_path / ".evsys")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "evsys_sdk.cli", "run", "config.yaml"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_sigint,  # Ctrl-C reaches it even when these tests run with SIGINT ignored
    )
    deadline = time.monotonic() + 60
    # Ctrl-C while arm2 trains (its hyperparams are logged as it starts): arm0 and arm1 are done by then
    while not (tmp_path / "out" / "arm2" / "logs" / "hyperparams.json").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the third arm did not start"
        time.sleep(0.05)
    assert (tmp_path / "out" / "arm1" / "arm_result.json").exists()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err
    assert json.loads((tmp_path / "out" / "arm2" / "run_result.json").read_text())["status"] == "cancelled"
    assert not (tmp_path / "out" / "arm3").exists()
    first_arm0 = (tmp_path / "out" / "arm0" / "run_result.json").read_text()

    resumed = evsys("run", "config.yaml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    lines = {line.split()[0]: line for line in resumed.stdout.splitlines() if line.startswith("arm")}
    assert [name for name, line in lines.items() if "completed (resumed)" in line] == ["arm0", "arm1"]
    assert all(" completed " in lines[name] for name in ("arm2", "arm3"))
    assert (tmp_path / "out" / "arm0" / "run_result.json").read_text() == first_arm0  # not re-run
    assert json.loads((tmp_path / "out" / "arm3" / "run_result.json").read_text())["status"] == "completed"


def test_evolve_example_searches_the_quickstart_recipe(repo_copy: Path) -> None:
    run = evsys("evolve", "examples/evolve/config.yaml", cwd=repo_copy)
    assert run.returncode == 0, run.stderr
    assert "[24/24]" in run.stderr and "confirmed c" in run.stderr
    assert "spent: candidates=24, arms=75" in run.stdout  # 24 x 3 seeds + 3 confirmation seeds
    shown = json.loads(evsys("evolve", "show", "quickstart_evolve", "--json", cwd=repo_copy).stdout)
    best, base = shown["best"], shown["candidates"][0]
    assert base["operator"] == "base" and best["mean"] < base["mean"]  # the search beat the hand-picked recipe
    assert any(c["operator"] in ("mutate", "crossover") and c["parents"] for c in shown["candidates"])
    again = evsys("run", "outputs/evolve/best.yaml", "--json", cwd=repo_copy)
    assert again.returncode == 0, again.stderr
    losses = [a["metrics"]["train/final_loss"] for a in json.loads(again.stdout)]
    assert losses == best["scores"]
    # a minimised objective stays minimised: the best arm of best.yaml is its lowest loss
    record = json.loads(evsys("runs", "show", "quickstart_evolve", "--json", cwd=repo_copy).stdout)
    lowest = min(record["arms"], key=lambda a: a["metrics"]["train/final_loss"])
    assert record["experiment"]["best_arm"] == lowest["name"], record["experiment"]


def test_evolve_fidelity_example_stops_candidates_at_their_rungs(repo_copy: Path) -> None:
    run = evsys("evolve", "examples/evolve/fidelity.yaml", cwd=repo_copy)
    assert run.returncode == 0, run.stderr
    assert "stopped at rung 10: " in run.stderr and "candidate(s) stopped at a rung" in run.stdout
    shown = json.loads(evsys("evolve", "show", "capitals_rungs", "--json", cwd=repo_copy).stdout)
    cands = shown["candidates"]
    full = [c for c in cands if c["status"] == "scored"]
    assert full and all(c["message"].startswith("stopped at rung") for c in cands if c["status"] == "stopped")
    assert shown["best"]["id"] == max(full, key=lambda c: c["mean"])["id"]
    # Each job trained from the start to its rung, on 2 seeds: together far less than 18 whole runs.
    jobs = [int(step) for c in cands for step in c["rung_scores"]]
    assert shown["spent"]["train_steps"] == 2 * sum(jobs) < 18 * 2 * 90 / 2
