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
    assert "12/12 arms completed." in run.stdout
    # The sweep answers its own question on mock: a higher rank lowers the final loss, beyond the noise.
    assert "Expected lower train/final_loss with higher lora_rank: supported" in run.stdout
    assert "(Welch's t-test, p=" in run.stdout and "mean +- 95% CI" in run.stdout
    results = json.loads((repo_copy / "results.json").read_text())
    names = [r["run_id"] for r in results]
    arms = [
        "sft__lora_rank8_learning_rate0p0001",
        "sft__lora_rank8_learning_rate5e-05",
        "sft__lora_rank32_learning_rate0p0001",
        "sft__lora_rank32_learning_rate5e-05",
    ]
    assert names == [f"{arm}__s{seed}" for arm in arms for seed in (42, 43, 44)]
    for r in results:
        assert r["status"] == "completed"
        assert 0.0 <= r["metrics"]["eval/exact_match"] <= 1.0 and "train/final_loss" in r["metrics"]
        run_dir = repo_copy / "outputs" / "quickstart" / r["run_id"]
        assert json.loads((run_dir / "run_result.json").read_text())["status"] == "completed"
        assert (run_dir / "final" / "metadata.json").exists()
    # 24 rows, 5 tools cycled: the mock always answers github_create_issue, right for rows 0, 5, ..., 20.
    assert results[0]["metrics"]["eval/exact_match"] == 5 / 24
