"""examples/gepa end to end through the installed CLI, from a scratch copy of the repo's layout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "gepa"


def evsys(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evsys_sdk.cli", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def test_example_runs_gepa_and_sft_arms_on_the_same_benchmarks(tmp_path: Path) -> None:
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "gepa", ignore=shutil.ignore_patterns("outputs"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")  # the project root of the example's paths
    validated = evsys("validate", "--deep", "examples/gepa/config.yaml", cwd=tmp_path)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    run = evsys("run", "examples/gepa/config.yaml", cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "best arm: prompt_opt (test.mean_reward=1)" in run.stdout
    assert "2/2 arms completed" in run.stdout
    out = tmp_path / "outputs" / "gepa_vs_sft"
    prompts = json.loads((out / "prompt_opt" / "prompts.json").read_text(encoding="utf-8"))
    assert prompts["score"] == 1.0 > prompts["seed_score"]
    tree = json.loads((out / "prompt_opt" / "candidates.json").read_text(encoding="utf-8"))
    assert tree["candidates"][tree["best_idx"]]["system_prompt"] == prompts["system_prompt"]
    assert (out / "sft" / "final" / "metadata.json").is_file()


def test_frontier_variant_parses() -> None:
    validated = evsys("validate", "examples/gepa/frontier.yaml", cwd=ROOT)
    assert validated.returncode == 0, validated.stdout + validated.stderr
