"""What runs inside a Slurm job: one arm, as a submitit checkpointable.

When Slurm preempts the job, or signals it ``signal_delay_s`` before its time limit, submitit calls
``ArmJob.checkpoint`` in the job's own process and requeues the job with what that returns: the same arm,
told to resume from its last checkpoint (``model.load_checkpoint_path``), with what is left of its time
budget (``run.max_seconds`` counts every attempt) and the step rows it had logged so far. After
``max_requeues`` requeues, or with its budget spent, the arm is not requeued and ends failed. Each
requeue is written to ``<run dir>/slurm_requeues.json`` and comes back on the arm as the metric
``slurm/requeues`` and the artifact ``slurm_requeues``.

No submitit import at module level: the class is pickled by the driver and loaded by the job.
"""

from __future__ import annotations

import copy
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk._io import atomic_write_json
from evsys_sdk.arm import ArmTask, run_arm_in_worker
from evsys_sdk.config import safe_run_name
from evsys_sdk.step_metrics import StepRow, find_metrics_file, read_step_rows

REQUEUES_FILE = "slurm_requeues.json"
_STEP = re.compile(r"(?:state|checkpoint)-(\d+)$")


def run_dir(task: ArmTask) -> Path:
    """The arm's run directory, as the arm itself resolves it (relative to the driver's cwd)."""
    out = Path(task.config["output_dir"]).expanduser()
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


def last_metrics(rows: list[StepRow]) -> dict[str, float]:
    """Each training metric's last logged value: what a stopped arm keeps."""
    last: dict[str, float] = {}
    for _, split, values in rows:
        if split == "train":
            last.update(values)
    return last


@dataclass
class ArmJob:
    """The callable a Slurm job runs: ``ArmJob(...)(task)``; its fields travel through each requeue."""

    max_requeues: int
    timeout_min: float
    requeues: list[dict[str, Any]] = field(default_factory=list)
    spent_seconds: float = 0.0  # wall time of the earlier attempts
    earlier_rows: list[StepRow] = field(default_factory=list)  # step rows logged before the last requeue
    run_config: dict[str, Any] | None = None  # the arm's run as the driver sent it, before any requeue
    _started: float = 0.0
    _stopped: str | None = None  # why checkpoint() did not requeue this attempt

    def __call__(self, task: ArmTask) -> dict[str, Any]:
        self._started = time.time()
        if self.run_config is None:
            self.run_config = copy.deepcopy(task.config["run"])
        outcome = run_arm_in_worker(task)
        if self._stopped is not None:  # the arm caught submitit's "not requeued" error and failed with it
            outcome["arm"].update(status="failed", error=self._stopped)
        if self.requeues or self._stopped is not None:
            self._merge_attempts(task, outcome)
        return outcome

    def _merge_attempts(self, task: ArmTask, outcome: dict[str, Any]) -> None:
        """The arm as one run: every attempt's step rows, the driver's run config, the requeues on it."""
        from evsys_sdk.arm import ARM_RECORD
        from evsys_sdk.config import RunConfig
        from evsys_sdk.runner import config_fingerprint

        rows = outcome.get("step_rows") or []
        resumed_at = rows[0][0] if rows else None
        kept = [r for r in self.earlier_rows if resumed_at is None or r[0] < resumed_at]
        outcome["step_rows"] = kept + list(rows) or None
        arm = outcome["arm"]
        arm["run_config"] = self.run_config
        if arm["status"] != "completed" and not arm["metrics"]:
            arm["metrics"] = last_metrics(outcome["step_rows"] or [])
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
        budget = task.config["run"].get("max_seconds")  # what is left of it for this attempt
        total = (self.run_config or {}).get("max_seconds")
        spent = self.spent_seconds + ran
        stopped = None
        if len(self.requeues) >= self.max_requeues:
            stopped = f"{reason} after {len(self.requeues)} requeue(s): max_requeues={self.max_requeues} reached"
        elif budget is not None and ran >= float(budget):
            stopped = f"time budget exceeded after {float(total or budget):g} s"
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
        following = ArmJob(self.max_requeues, self.timeout_min, requeues, spent, earlier, self.run_config)
        nxt = copy.deepcopy(task)
        run = nxt.config["run"]
        if state is not None:
            run["model"]["load_checkpoint_path"] = state
        if budget is not None:
            run["max_seconds"] = float(budget) - ran
        return DelayedSubmission(following, nxt)
