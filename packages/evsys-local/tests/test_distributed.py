"""num_processes > 1: a torchrun job of gloo ranks on CPU, rank 0 reporting to the arm's process.

Each test launches real jobs (about 3 s of imports per rank on an idle 2-core machine), so the runs are
few and short.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAT_ROWS, PREFERENCE_ROWS, TASK_ROWS, local_config, metric_rows

from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.run.runner import run_experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.testing.executors import interruptible

pytestmark = pytest.mark.timeout(300)

HERE = Path(__file__).parent
SFT = {"max_steps": 4, "batch_size": 8, "lora_rank": 0, "learning_rate": 3e-3, "save_every": 2}
LONG = {**SFT, "max_steps": 100_000, "save_every": 0, "save_at_fractions": [1.0]}  # stopped long before


@pytest.fixture(autouse=True)
def _ranks_import_faults(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ranks unpickle the tests' callbacks (faults.py) by module name."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]))


def job_processes(token: Path) -> list[int]:
    """Processes whose command line names ``token`` (the arm's spec file lives under it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if str(token) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def config(out: Path, algorithm: str, params: dict[str, Any], rows: list[dict[str, Any]], n: int) -> dict[str, Any]:
    cfg = local_config(out, algorithm, params, rows)
    cfg["run"]["backend"]["params"] = {"device": "cpu", "num_processes": n}
    return cfg


def with_val(cfg: dict[str, Any], out: Path, every: int) -> dict[str, Any]:
    bench = out / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "tasks.jsonl").write_text("".join(json.dumps(t) + "\n" for t in TASK_ROWS), encoding="utf-8")
    cfg["metadata"] = {"benchmark": [{"name": "val", "path": str(bench), "max_tokens": 4, "run_every": every}]}
    return cfg


def losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["metrics"]["train/loss"] for r in metric_rows(run_dir) if "train/loss" in r["metrics"]}


def test_two_ranks_train_as_one_process_and_only_rank_0_records(tmp_path: Path) -> None:
    arms = {}
    for n in (1, 2):
        out = tmp_path / f"n{n}"
        cfg = with_val(config(out, "sft", SFT, CHAT_ROWS, n), out, every=2)
        [arm] = Experiment(ExperimentConfig.model_validate(cfg)).run().arms
        assert arm.status == "completed", arm.error
        arms[n] = (arm, out / "contract")
    one, two = losses(arms[1][1]), losses(arms[2][1])
    assert sorted(two) == [1, 2, 3, 4]
    # The same rows make every step (a rank takes half of each global batch) and the gradients are
    # averaged over all tokens of the step, so only float summation order differs: ~1e-7 relative seen.
    assert two == pytest.approx(one, rel=1e-4)
    # In-loop validation ran on rank 0's live model, scored by this process, at the same steps.
    steps = {
        n: sorted(r["step"] for r in metric_rows(d) if "val/val/pass_rate" in r["metrics"])
        for n, (_, d) in arms.items()
    }
    assert steps[2] == steps[1] == [2, 4]
    arm, run_dir = arms[2]
    record = json.loads((run_dir / "run_result.json").read_text())
    assert record["status"] == "completed" and Path(record["artifacts"]["final_checkpoint"]).is_dir()
    assert {"ckpt_step_2", "ckpt_step_4", "state-final"} <= set(record["artifacts"])
    # Rank 0 wrote the checkpoints; the only file of rank 1 is its RNG state, which exact resume needs.
    state = run_dir / "state-final"
    assert {"model.safetensors", "optimizer.pt", "rng_state_0.pth", "rng_state_1.pth"} <= {
        p.name for p in state.iterdir()
    }
    assert not (run_dir / "distributed" / "arm.pkl").exists()  # the description is gone with the job
    assert job_processes(tmp_path) == []


def test_a_crashing_rank_fails_the_arm_with_its_error_and_resume_reruns_it(tmp_path: Path) -> None:
    from faults import CrashAt

    cfg = config(tmp_path, "sft", SFT, CHAT_ROWS, 2)
    experiment = ExperimentConfig.model_validate(cfg)
    crash = CrashAt(rank=1, step=2, once=str(tmp_path / "crashed"))
    context = {"local_trainer_callbacks": [crash]}

    def train(one_arm: ExperimentConfig) -> Any:
        return run_experiment(one_arm, extra_context=context, validate=False)

    [arm] = Experiment(experiment, train_fn=train).run().arms
    assert arm.status == "failed"
    assert "rank 1 failed: RuntimeError: injected fault on rank 1 at step 2" in (arm.error or "")
    record = json.loads((tmp_path / "contract" / "run_result.json").read_text())
    assert record["status"] == "failed" and "injected fault" in record["traceback"]
    assert job_processes(tmp_path) == []
    [again] = Experiment(experiment, train_fn=train, resume=True).run().arms
    assert again.status == "completed", again.error
    assert not again.resumed  # a failed arm is trained again, not skipped
    assert sorted(losses(tmp_path / "contract")) == [1, 2, 3, 4]


def test_the_time_budget_stops_the_whole_job(tmp_path: Path) -> None:
    cfg = config(tmp_path, "sft", LONG, CHAT_ROWS, 2)
    cfg["run"]["max_seconds"] = 1
    start = time.monotonic()
    [result] = run_experiment(cfg)
    assert result.status == "failed" and result.error == "time budget exceeded after 1 s"
    assert time.monotonic() - start < 60
    assert job_processes(tmp_path) == []


def wait_for_training(metrics: Path) -> None:
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not (metrics.exists() and metrics.read_text().strip()):
        time.sleep(0.1)


def test_ctrl_c_stops_the_job_and_records_the_arm_cancelled(tmp_path: Path) -> None:
    cfg = config(tmp_path, "sft", LONG, CHAT_ROWS, 2)
    main = threading.main_thread().ident
    assert main is not None

    def interrupt_once_training() -> None:
        wait_for_training(tmp_path / "contract" / "logs" / "metrics.jsonl")
        signal.pthread_kill(main, signal.SIGINT)

    # Python's own handler, as in a terminal (a shell starting pytest in the background ignores SIGINT).
    with interruptible():
        threading.Thread(target=interrupt_once_training, daemon=True).start()
        with pytest.raises(KeyboardInterrupt):
            run_experiment(cfg)
    record = json.loads((tmp_path / "contract" / "run_result.json").read_text())
    assert record["status"] == "cancelled"
    assert job_processes(tmp_path) == []


def test_killing_the_arms_process_leaves_no_rank_behind(tmp_path: Path) -> None:
    """SIGKILL of the process running the arm (an executor's hard kill, the OOM killer): torchrun gets
    SIGTERM and stops its ranks, and a rank whose torchrun is gone gets SIGKILL."""
    import subprocess
    import sys

    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(config(tmp_path, "sft", LONG, CHAT_ROWS, 2)))
    code = "import json, sys; from evsys_sdk import run_experiment; run_experiment(json.load(open(sys.argv[1])))"
    arm = subprocess.Popen([sys.executable, "-c", code, str(cfg)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_training(tmp_path / "contract" / "logs" / "metrics.jsonl")
        assert len(set(job_processes(tmp_path)) - {arm.pid}) == 3  # torchrun and its two ranks
    finally:
        arm.kill()
        arm.wait()
    deadline = time.monotonic() + 60
    while job_processes(tmp_path) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job_processes(tmp_path) == []


@pytest.mark.parametrize(
    ("algorithm", "params", "rows"),
    [
        ("rl", {"max_steps": 2, "batch_size": 2, "num_samples": 2, "max_tokens": 4, "lora_rank": 4}, TASK_ROWS),
        ("dpo", {"max_steps": 2, "batch_size": 2, "lora_rank": 4}, PREFERENCE_ROWS),
        ("distill", {"max_steps": 2, "batch_size": 2, "lora_rank": 4, "max_completion_tokens": 4}, CHAT_ROWS),
    ],
)
def test_every_trl_family_trains_on_two_ranks(
    tmp_path: Path, algorithm: str, params: dict[str, Any], rows: list[dict[str, Any]]
) -> None:
    from conftest import TINY

    if algorithm == "distill":
        params = {**params, "teacher": str(TINY)}
    [result] = run_experiment(config(tmp_path, algorithm, params, rows, 2))
    assert result.status == "completed", result.error
    assert Path(result.artifacts["final_checkpoint"]).is_dir()
    assert any("train/loss" in r["metrics"] for r in metric_rows(tmp_path / "contract"))
    if algorithm == "rl":  # the rewards of both ranks: batch 2 x 2 samples per step
        assert result.metrics["reward/mean"] >= 0
        rewards = [
            r["metrics"]["reward/n_trajectories"]
            for r in metric_rows(tmp_path / "contract")
            if "reward/n_trajectories" in r["metrics"]
        ]
        assert rewards and all(n == 4 for n in rewards)


def test_refusals(tmp_path: Path) -> None:
    [sdft] = run_experiment(
        config(tmp_path / "sdft", "sdft", {"max_steps": 1}, [{"inputs": {"question": "1"}, "expected": "1"}], 2)
    )
    assert sdft.status == "failed" and "local_sdft trains in its own loop in one process" in (sdft.error or "")
    [odd] = run_experiment(config(tmp_path / "odd", "sft", {**SFT, "batch_size": 3}, CHAT_ROWS, 2))
    assert odd.status == "failed"
    assert "batch_size 3 does not split evenly over backend num_processes: 2" in (odd.error or "")
    local = {"local_trainer_callbacks": [lambda: None]}  # a rank could not rebuild it
    [unshippable] = run_experiment(config(tmp_path / "cb", "sft", SFT, CHAT_ROWS, 2), extra_context=local)
    assert unshippable.status == "failed"
    assert "run context extra 'local_trainer_callbacks' cannot be sent to the training processes" in (
        unshippable.error or ""
    )
    assert job_processes(tmp_path) == []  # all three refused before anything was launched
