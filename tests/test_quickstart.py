"""The README's quickstart, end to end through the installed CLI."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import evsys


def test_quickstart_validates_and_runs(repo_copy: Path) -> None:
    config = "examples/quickstart/config.yaml"
    check = evsys("validate", config, "--deep", cwd=repo_copy)
    assert check.returncode == 0, check.stderr
    run = evsys("run", config, "-o", "results.json", cwd=repo_copy)
    assert run.returncode == 0, run.stderr
    assert "4/4 arms completed." in run.stdout
    results = json.loads((repo_copy / "results.json").read_text())
    names = [r["run_id"] for r in results]
    assert names == [
        "sft__lora_rank8_learning_rate0p0001",
        "sft__lora_rank8_learning_rate5e-05",
        "sft__lora_rank32_learning_rate0p0001",
        "sft__lora_rank32_learning_rate5e-05",
    ]
    for r in results:
        assert r["status"] == "completed"
        assert 0.0 <= r["metrics"]["eval/exact_match"] <= 1.0 and "train/final_loss" in r["metrics"]
        run_dir = repo_copy / "outputs" / "quickstart" / r["run_id"]
        assert json.loads((run_dir / "run_result.json").read_text())["status"] == "completed"
        assert (run_dir / "final" / "metadata.json").exists()
    # 24 rows, 5 tools cycled: the mock always answers github_create_issue, right for rows 0, 5, ..., 20.
    assert results[0]["metrics"]["eval/exact_match"] == 5 / 24
