"""A gepa arm in an Experiment: scored on benchmarks through its default inference factory (the task
LM under the optimised prompt), in the loop and after training, beside an SFT arm."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import TOY

from evsys_gepa.testing import toy_tasks
from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.registry import registry


def _write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_gepa_arm_is_scored_like_a_trained_checkpoint(tmp_path: Path) -> None:
    train = toy_tasks(6, start=1, prefix="train")
    test_dir = _write(tmp_path / "bench" / "test", toy_tasks(5, start=50, prefix="test"))
    val_dir = _write(tmp_path / "bench" / "val", toy_tasks(3, start=80, prefix="val"))
    data = {"source_kind": "in_memory", "rows": train}
    config = load_yaml(
        {
            "version": 1,
            "name": "gepa_vs_sft",
            "output_dir": str(tmp_path / "out"),
            "metadata": {
                "success_metric": "test.mean_reward",
                "benchmark": [
                    {"name": "val", "path": str(val_dir), "run_every": 1},
                    {"name": "test", "path": str(test_dir)},
                ],
            },
            "runs": [
                {
                    "name": "prompt_opt",
                    "data": data,
                    "model": {"name": "toy"},
                    "backend": {"kind": "mock"},
                    "algorithm": {"kind": "gepa_prompt", "params": {**TOY, "max_iterations": 6}},
                },
                {
                    "name": "sft",
                    "data": data,
                    "model": {"name": "toy"},
                    "backend": {"kind": "mock"},
                    "algorithm": {"kind": "sft", "params": {"num_epochs": 2, "batch_size": 2}},
                },
            ],
        }
    )
    result = Experiment(config).run()
    assert result.status == "completed", [a.error for a in result.arms]
    gepa_arm, sft_arm = result.arms
    assert gepa_arm.status == sft_arm.status == "completed"
    assert result.best_arm is gepa_arm

    # after training: the optimised prompt is served and scored on the unseen test sums
    test_eval = gepa_arm.eval("test")
    assert test_eval is not None and test_eval.step is None
    assert test_eval.metrics["mean_reward"] == gepa_arm.score("test.mean_reward") == 1.0
    assert sft_arm.score("test.mean_reward") == 0.0  # the mock fine-tune recalls only its training rows

    # exactly what scoring the saved prompt by hand gives
    assert gepa_arm.run_result is not None
    saved = gepa_arm.run_result.artifacts["final_prompt"]
    client = registry("inference_client").get("gepa_prompted")(base="gepa_toy", prompt_file=saved)
    by_hand = Benchmark.from_dir(test_dir).score(client)
    assert by_hand.metrics["mean_reward"] == test_eval.metrics["mean_reward"]

    # in the loop: the best prompt so far, scored on val at every GEPA iteration
    live = [e for e in gepa_arm.evals if e.name == "val" and e.step is not None]
    assert [e.step for e in live] == [1, 2]
    assert [e.metrics["mean_reward"] for e in live] == [0.5, 1.0]
    logged = Path(config.output_dir, "prompt_opt", "logs", "metrics.jsonl").read_text(encoding="utf-8")
    assert '"val/val/mean_reward"' in logged and '"gepa/best_score"' in logged
