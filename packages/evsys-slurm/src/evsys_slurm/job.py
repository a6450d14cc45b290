"""What runs inside a Slurm job: one arm, as a submitit checkpointable.

When Slurm preempts the job, or signals it ``signal_delay_s`` before its time limit, submitit calls
``ArmJob.checkpoint`` in the job's own process and requeues the job with what that returns: the same arm,
told to resume from its last checkpoint (``model.load_checkpoint_path``), with what is left of its time
budget (``run.max_seconds`` counts every attempt) and the step rows it had logged so far. After
``max_requeues`` requeues, or with its budget spent, the arm is not requeued and ends failed. Each
requeue is written to ``<run dir>/slurm_requeues.json`` and comes back on the arm as the metric
``slurm/requeues`` and the artifact ``slurm_requeues``. An arm still running ``kill_grace_seconds`` past
its budget (a stuck call that never checks it) is killed by a watchdog in the job and recorded failed.

No submitit import at module level: the class is pickled by the driver and loaded by the job.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk.base.budget import budget_message
from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.orchestration.arm import ArmTask, run_arm_in_worker
from evsys_sdk.run.step_metrics import StepRow, find_metrics_file, last_values, read_step_rows
from evsys_sdk.spec.config import safe_run_name

REQUEUES_FILE = "slurm_requeues.json"
_STEP = re.compile(r"(?:state|checkpoint)-(\d+)$")


def run_dir(task: ArmTask) -> Path:
    """The arm's run directory, as the arm itself resolves it (relative to the driver's cwd)."""
    out = Path(task.experiment.config.output_dir).expanduser()
    return (Path(task.cwd) / out if not out.is_absolute() else out) / safe_run_name(task.name)


def last_state(directory: Path) -> str | None:
    """The checkpoint a requeued arm resumes from: the last ``state-*`` artifact the arm logged (a local
    directory or a backend's URI), else its highest-numbered ``state-N`` / ``checkpoint-N`` directory (a
    trainer's mid-run saves, logged only at the end)."""
    logged = directory / "artifacts.json"
    try:
        entries = json.loads(logged.read_text(encoding="utf-8")) if logged.is_file() else []
    except (OSError, ValueError):
        entries = []
    states = [e["path"] for e in entries if isinstance(e, dict) and str(e.get("name", "")).startswith("state-")]
    if states:
        return str(states[-1])
    numbered = []
    for child in directory.iterdir() if directory.is_dir() else ():
        match = _STEP.match(child.name)
        if match and child.is_dir():
            numbered.append((int(match.group(1)), str(child)))
    return max(numbered)[1] if numbered else None


def read_requeues(directory: Path) -> dict[str, Any]:
    """``{"requeues": [...], "stopped": reason or None}`` as the arm's jobs wrote it (empty when never)."""
    path = directory / REQUEUES_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return data
    except (OSError, ValueError):
        return {"requeues": [], "stopped": None}


@dataclass
class ArmJob:
    """The callable a Slurm job runs: ``ArmJob(...)(task)``; its fields travel through each requeue."""

    max_requeues: int
    timeout_min: float
    kill_grace_seconds: float = 10.0  # past its budget and this, an arm that did not stop is killed
    requeues: list[dict[str, Any]] = field(default_factory=list)
    spent_seconds: float = 0.0  # wall time of the earlier attempts
    earlier_rows: list[StepRow] = field(default_factory=list)  # step rows logged before the last requeue
    run_config: dict[str, Any] | None = None  # the arm's run as the driver sent it, before any requeue
    _started: float = 0.0
    _stopped: str | None = None  # why checkpoint() did not requeue this attempt

    def __call__(self, task: ArmTask) -> dict[str, Any]:
        self._started = time.time()
        if self.run_config is None:
            self.run_config = task.run.model_dump(mode="json")
        if task.max_seconds is not None:
            watchdog = threading.Timer(task.max_seconds + self.kill_grace_seconds, self._kill, args=(task,))
            watchdog.daemon = True
            watchdog.start()
        outcome = run_arm_in_worker(task)
        if self._stopped is not None:  # the arm caught submitit's "not requeued" error and failed with it
            outcome["arm"].update(status="failed", error=self._stopped)
        if self.requeues or self._stopped is not None:
            self._merge_attempts(task, outcome)
        return outcome

    def _kill(self, task: ArmTask) -> None:
        """The arm is past its budget and grace without stopping (a stuck call): end the job, saying why,
        so the driver records it failed with what it had logged."""
        total = (self.run_config or {}).get("max_seconds") or task.max_seconds or 0.0
        record = {"requeues": self.requeues, "stopped": budget_message(float(total))}
        atomic_write_json(run_dir(task) / REQUEUES_FILE, record)
        os.kill(os.getpid(), signal.SIGKILL)

    def _merge_attempts(self, task: ArmTask, outcome: dict[str, Any]) -> None:
        """The arm as one run: every attempt's step rows, the driver's run config, the requeues on it."""
        from evsys_sdk.orchestration.arm import ARM_RECORD
        from evsys_sdk.run.runner import config_fingerprint
        from evsys_sdk.spec.config import RunConfig

        rows = outcome.get("step_rows") or []
        resumed_at = rows[0][0] if rows else None
        kept = [r for r in self.earlier_rows if resumed_at is None or r[0] < resumed_at]
        outcome["step_rows"] = kept + list(rows) or None
        arm = outcome["arm"]
        arm["run_config"] = self.run_config
        if arm["status"] != "completed" and not arm["metrics"]:
            arm["metrics"] = last_values(outcome["step_rows"] or [])
        arm["metrics"]["slurm/requeues"] = float(len(self.requeues))
        if arm.get("run_result") is not None:
            arm["run_result"]["artifacts"]["slurm_requeues"] = str(run_dir(task) / REQUEUES_FILE)
        if arm["status"] == "completed":  # --resume skips it: the record names the driver's config
            fingerprint = config_fingerprint(RunConfig.model_validate(self.run_config))
            atomic_write_json(run_dir(task) / ARM_RECORD, {"config_fingerprint": fingerprint, "arm": arm})

    def checkpoint(self, task: ArmTask) -> Any:
        """Called by submitit on preemption or near the time limit: the requeued job's submission, or None
        (the arm ends failed) when it may not be requeued again."""
        from submitit.helpers import DelayedSubmission

        ran = time.time() - self._started
        # submitit's own rule: a signal this late in the job is the time limit, earlier it is preemption
        limit = self.timeout_min * 60
        reason = "time limit" if ran >= min(0.8 * limit, limit - 600) else "preempted"
        directory = run_dir(task)
        budget = task.max_seconds  # what is left of it for this attempt
        total = (self.run_config or {}).get("max_seconds")
        spent = self.spent_seconds + ran
        stopped = None
        if len(self.requeues) >= self.max_requeues:
            stopped = f"{reason} after {len(self.requeues)} requeue(s): max_requeues={self.max_requeues} reached"
        elif budget is not None and ran >= budget:
            stopped = budget_message(float(total or budget))
        state = last_state(directory)
        record = {"at": time.time(), "reason": reason, "ran_seconds": round(ran, 3), "resume_from": state}
        record["spent_seconds"] = round(spent, 3)
        requeues = [*self.requeues, record] if stopped is None else self.requeues
        atomic_write_json(directory / REQUEUES_FILE, {"requeues": requeues, "stopped": stopped})
        if stopped is not None:
            self._stopped = stopped
            return None
        metrics = find_metrics_file(directory) if directory.is_dir() else None
        rows = read_step_rows(metrics) if metrics is not None else []
        resumed_at = rows[0][0] if rows else None
        earlier = [r for r in self.earlier_rows if resumed_at is None or r[0] < resumed_at] + rows
        following = ArmJob(
            self.max_requeues, self.timeout_min, self.kill_grace_seconds, requeues, spent, earlier, self.run_config
        )
        return DelayedSubmission(following, resumed(task, state, None if budget is None else budget - ran))


def resumed(task: ArmTask, state: str | None, max_seconds: float | None) -> ArmTask:
    """The same arm told to resume from ``state`` (``model.load_checkpoint_path``) within ``max_seconds``."""
    run = task.run
    update: dict[str, Any] = {"max_seconds": max_seconds}
    if state is not None:
        update["model"] = run.model.model_copy(update={"load_checkpoint_path": state})
    experiment = copy.copy(task.experiment)  # the job's copy; its store and progress are not shipped
    experiment.config = experiment.config.model_copy(update={"run": run.model_copy(update=update)})
    return dataclasses.replace(task, experiment=experiment)
