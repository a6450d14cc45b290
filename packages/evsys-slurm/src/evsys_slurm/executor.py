"""The ``slurm`` executor: each arm of an experiment is one Slurm job, submitted through submitit.

Slurm is the engine: it queues the jobs, places them on nodes by their resource requests and runs each
in the submitter's Python (``sys.executable``, so the environment must be visible on the nodes). evsys
submits arms (plain arms that go out together as one job array), polls them, and records what each
returns: the driver alone writes the tracking store. submitit's ``folder`` carries the pickled arms,
results and logs, so it must be on a filesystem the nodes share. Module import stays light: submitit
is imported when the executor starts.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.base.logger import get_logger
from evsys_sdk.orchestration.arm import ArmTask
from evsys_sdk.orchestration.executors import Executor, Outcome, WorkerDied
from evsys_sdk.run.progress import Progress
from evsys_slurm.job import REQUEUES_FILE, ArmJob, read_requeues, run_dir

log = get_logger("slurm")

JOB_RECORD = "slurm_job.json"  # in the arm's run dir: the job it runs in, so --resume re-attaches
# Slurm states of a job that may still return a result (sacct's words).
LIVE_STATES = {
    "PENDING",
    "RUNNING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "CONFIGURING",
    "COMPLETING",
    "RESIZING",
    "SUSPENDED",
    "PREEMPTED",
}
# File systems a compute node cannot see when the driver writes to them.
LOCAL_FS = {"tmpfs", "ramfs", "overlay", "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "vfat", "devtmpfs"}


@dataclass(eq=False)
class _Arm:
    """One arm in flight: its task, and its job once submitted (``None`` until the next ``wait``)."""

    task: ArmTask
    resources: tuple[tuple[str, Any], ...]
    job: Any = None
    done: Outcome | None = None  # known without a job: an arm --resume finds completed


class SlurmExecutor(Executor):
    """Arms as Slurm jobs (``cluster: slurm``), or as local subprocesses through the same submitit code
    (``cluster: local``: submitit's LocalExecutor, for a machine without Slurm)."""

    name: ClassVar[str] = "slurm"

    class Config(Executor.Config):
        cluster: Literal["slurm", "local"] = Field(
            default="slurm",
            description="slurm: sbatch onto the cluster; local: submitit's LocalExecutor, the same jobs as "
            "subprocesses of this machine (no Slurm needed)",
        )
        folder: str | None = Field(
            default=None,
            description="submitit's job folder (pickled arms, results, logs); it must be on a filesystem the "
            "compute nodes share (NFS, Lustre, GPFS, BeeGFS); default: <workspace>/slurm",
        )
        partition: str | None = Field(default=None, description="sbatch --partition (default: the cluster's)")
        account: str | None = Field(default=None, description="sbatch --account to charge")
        qos: str | None = Field(default=None, description="sbatch --qos")
        time_limit_min: int = Field(
            default=60, ge=1, le=525_600, description="each job's time limit in minutes (sbatch --time)"
        )
        cpus_per_arm: int = Field(default=1, ge=1, le=4096, description="CPUs of each arm (--cpus-per-task)")
        gpus_per_arm: int = Field(default=0, ge=0, le=64, description="GPUs of each arm (--gpus-per-node)")
        mem_per_arm: str | None = Field(
            default=None,
            pattern=r"^[1-9][0-9]*[KMGT]?$",
            description="memory of each arm, as sbatch --mem takes it ('16G', '4000' MB); default: the cluster's",
        )
        max_in_flight: int = Field(
            default=32, ge=1, le=10_000, description="arms submitted at once (queued or running); Slurm runs them"
        )
        array: bool = Field(
            default=True, description="arms submitted together with equal resources go as one job array"
        )
        max_requeues: int = Field(
            default=3, ge=0, le=100, description="times an arm is requeued after preemption or its time limit"
        )
        signal_delay_s: int = Field(
            default=90, ge=1, le=3600, description="seconds before the time limit Slurm signals the arm to requeue"
        )
        sbatch: dict[str, str | int | bool] = Field(
            default_factory=dict,
            description="extra sbatch options by long name without dashes, e.g. {constraint: a100, exclusive: true}",
        )
        setup: list[str] = Field(
            default_factory=list, description="shell lines each job runs first, e.g. 'module load cuda/12.4'"
        )
        results_timeout_s: float = Field(
            default=15.0,
            ge=0,
            le=600,
            allow_inf_nan=False,
            description="how long a finished job's result file may take to show up (NFS caches) before its arm "
            "counts as died",
        )
        poll_seconds: float = Field(
            default=0.5, gt=0, le=60, allow_inf_nan=False, description="how often results are looked for"
        )

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._submitit: Any = None
        self._executor: Any = None
        self._folder: Path | None = None
        self._live: set[_Arm] = set()

    @property
    def slots(self) -> int:
        return self.config.max_in_flight

    @property
    def folder(self) -> Path:
        if self.config.folder is not None:
            return Path(self.config.folder).expanduser().resolve()
        from evsys_sdk.tracking.store import workspace_root

        return (workspace_root(None) / "slurm").resolve()

    def start(self) -> None:
        if self.started:
            return
        import submitit

        self._submitit = submitit
        folder = self.folder
        if self.config.cluster == "slurm":
            if shutil.which("sbatch") is None:
                raise ConfigError(
                    "executor 'slurm': sbatch is not on PATH; run evsys on a Slurm login node, or set "
                    "executor.params.cluster: local to run the jobs on this machine"
                )
            check_folder(folder, self.config.partition)
            self._executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=self.config.max_requeues)
        else:
            self._executor = submitit.LocalExecutor(folder=folder, max_num_timeout=self.config.max_requeues)
        self._folder = folder
        self.started = True

    # resources

    def _resources(self, backend_params: dict[str, Any], experiment: str = "arm") -> dict[str, Any]:
        """submitit parameters of one arm: the executor's, then the run's backend.params (ray's keys);
        jobs are named for their experiment (``squeue --name evsys-NAME``)."""
        c = self.config
        cpus, gpus, mem = c.cpus_per_arm, c.gpus_per_arm, c.mem_per_arm
        if "num_cpus" in backend_params:
            cpus = max(1, math.ceil(float(backend_params["num_cpus"])))
        if "num_gpus" in backend_params:
            gpus = math.ceil(float(backend_params["num_gpus"]))
        if "memory" in backend_params:  # bytes, as ray takes it
            mem = f"{max(1, math.ceil(float(backend_params['memory']) / 2**20))}M"
        if c.cluster == "local":
            return {
                "timeout_min": c.time_limit_min,
                "cpus_per_task": cpus,
                "gpus_per_node": gpus,
                "signal_delay_s": c.signal_delay_s,
                "setup": list(c.setup),
            }
        out: dict[str, Any] = {
            "time": c.time_limit_min,
            "cpus_per_task": cpus,
            "signal_delay_s": c.signal_delay_s,
            "array_parallelism": c.max_in_flight,
            "job_name": f"evsys-{experiment}",
        }
        optional = {"partition": c.partition, "account": c.account, "qos": c.qos, "mem": mem}
        out.update({k: v for k, v in optional.items() if v is not None})
        if gpus:
            out["gpus_per_node"] = gpus
        if c.setup:
            out["setup"] = list(c.setup)
        if c.sbatch:
            out["additional_parameters"] = dict(c.sbatch)
        return out

    # the executor interface

    def submit(self, task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> Any:
        self.start()
        params = self._resources(_backend_params(task), task.experiment.config.name)
        arm = _Arm(task, tuple(sorted((k, repr(v)) for k, v in params.items())))
        if task.resume:
            arm.done = _completed(task)
            arm.job = self._reattach(task) if arm.done is None else None
        self._live.add(arm)
        return arm

    def _reattach(self, task: ArmTask) -> Any:
        """The job an earlier driver submitted for this arm (``--resume``) while it is queued or running,
        else None (a job that ended is not waited for: its arm is done and recorded, or runs again)."""
        if self.config.cluster != "slurm":
            return None
        record = run_dir(task) / JOB_RECORD
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if data.get("run") != task.run.model_dump(mode="json") or data.get("folder") != str(self._folder):
            return None
        job = self._submitit.SlurmJob(folder=self._folder, job_id=str(data["job_id"]))
        state = str(job.watcher.get_state(job.job_id, mode="force")).split()[0].upper()
        if state not in LIVE_STATES:
            return None
        job._results_timeout_s = self.config.results_timeout_s
        log.info("arm '%s': re-attached to Slurm job %s (%s)", task.name, job.job_id, state)
        return job

    def _flush(self, arms: list[_Arm]) -> None:
        """Submit the arms not yet submitted: one job array per set of equal resources (``array``)."""
        pending = [a for a in arms if a.job is None and a.done is None]
        groups: dict[tuple[tuple[str, Any], ...], list[_Arm]] = {}
        for arm in pending:
            groups.setdefault(arm.resources, []).append(arm)
        ex = self._executor
        for group in groups.values():
            params = self._resources(_backend_params(group[0].task), group[0].task.experiment.config.name)
            ex.update_parameters(**params)
            for arm in group:  # an earlier run's requeues are not this one's
                (run_dir(arm.task) / REQUEUES_FILE).unlink(missing_ok=True)
            calls = [(self._callable(), a.task) for a in group]
            if self.config.array and len(group) > 1:
                with ex.batch():
                    jobs = [ex.submit(fn, task) for fn, task in calls]
            else:
                jobs = [ex.submit(fn, task) for fn, task in calls]
            for arm, job in zip(group, jobs, strict=True):
                arm.job = job
                job._results_timeout_s = self.config.results_timeout_s
                if self.config.cluster == "slurm":
                    atomic_write_json(
                        run_dir(arm.task) / JOB_RECORD,
                        {
                            "job_id": job.job_id,
                            "folder": str(self._folder),
                            "run": arm.task.run.model_dump(mode="json"),
                        },
                    )

    def _callable(self) -> ArmJob:
        c = self.config
        return ArmJob(c.max_requeues, float(c.time_limit_min), c.kill_grace_seconds)

    def wait(self, handles: list[Any]) -> list[tuple[Any, Outcome]]:
        self._flush(handles)
        while True:
            done = [arm for arm in handles if arm.done is not None or arm.job.done()]
            if done:
                return [(arm, self._outcome(arm)) for arm in done]
            time.sleep(self.config.poll_seconds)

    def _outcome(self, arm: _Arm) -> Outcome:
        from submitit.core.utils import FailedJobError, UncompletedJobError

        self._live.discard(arm)
        if arm.done is not None:
            return arm.done
        job, task = arm.job, arm.task
        try:
            result: dict[str, Any] = job.result()
        except (UncompletedJobError, FailedJobError) as exc:
            # an arm that may not be requeued again ends in an error its checkpoint() explained
            stopped = read_requeues(run_dir(task)).get("stopped")
            if stopped:
                return _stopped(task, stopped)
            if isinstance(exc, FailedJobError):  # the job's Python raised outside the arm
                parts = str(exc).split("-" * 22)  # submitit puts the traceback between two rules
                lines = [line.strip() for line in (parts[1] if len(parts) > 2 else str(exc)).splitlines()]
                return RuntimeError(next((line for line in reversed(lines) if line), f"job {job.job_id} failed"))
            return WorkerDied(_died(job, self.config.cluster))
        # a re-attached job was submitted by an earlier driver: the records are this driver's
        result["arm"].update(run_id=task.run_id, group_id=task.group_id, group_name=task.group_name)
        return result

    def cancel(self, handles: list[Any]) -> None:
        jobs = [arm.job for arm in handles if arm.job is not None]
        for arm in handles:
            self._live.discard(arm)
            (run_dir(arm.task) / JOB_RECORD).unlink(missing_ok=True)
        if not jobs:
            return
        if self.config.cluster == "slurm":
            subprocess.run(["scancel", *[str(j.job_id) for j in jobs]], capture_output=True, timeout=60)
        else:
            for job in jobs:
                job.cancel(check=False)

    def close(self) -> None:
        self._live.clear()
        self._executor = None
        self.started = False


def _completed(task: ArmTask) -> dict[str, Any] | None:
    """The arm as recorded completed for this run config (``--resume``): no job needed."""
    from evsys_sdk.orchestration.arm import resume_outcome

    return resume_outcome(task, run_dir(task))


def _backend_params(task: ArmTask) -> dict[str, Any]:
    return dict(task.run.backend.params)


def _stopped(task: ArmTask, reason: str) -> dict[str, Any]:
    """A failed arm that was not requeued again: its reason, and the metrics and step rows it logged."""
    from evsys_sdk.run.step_metrics import find_metrics_file, last_values, read_step_rows
    from evsys_sdk.spec.results import ArmResult

    directory = run_dir(task)
    metrics_file = find_metrics_file(directory) if directory.is_dir() else None
    rows = read_step_rows(metrics_file) if metrics_file is not None else []
    metrics = {**last_values(rows), "slurm/requeues": float(len(read_requeues(directory)["requeues"]))}
    arm = ArmResult(
        name=task.name,
        run_config=task.run,
        status="failed",
        run_id=task.run_id,
        group_id=task.group_id,
        group_name=task.group_name,
        stage=task.stage,
        error=reason,
        metrics=metrics,
    )
    return {"arm": arm.to_json(), "step_rows": rows or None}


def _died(job: Any, cluster: str) -> str:
    """Why a job ended without a result: its state and how its process ended, or a hint when it left no log."""
    how = _exit_reason(str(job.job_id)) if cluster == "slurm" else ""
    if not Path(job.paths.stderr).exists() and not Path(job.paths.stdout).exists():
        return (
            f"the Slurm job {job.job_id} running this arm ended{how} and wrote no log to {job.paths.folder}: "
            "is executor.params.folder on a filesystem the compute nodes share?"
        )
    tail = [line for line in (job.stderr() or "").splitlines() if line.strip() and "srun:" not in line]
    last = f"; its log ends: {tail[-1].strip()}" if tail else ""
    kind = "Slurm job" if cluster == "slurm" else "job"
    return f"the {kind} {job.job_id} running this arm ended{how} without a result{last}"


def _exit_reason(job_id: str) -> str:
    """`` FAILED (killed by SIGKILL)``: the job's state and the first step that a signal ended, from sacct."""
    import signal

    cmd = ["sacct", "-j", job_id, "-n", "-P", "-o", "JobID,State,ExitCode"]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    rows = [line.split("|") for line in out.splitlines() if line.count("|") == 2]
    if not rows:
        return ""
    state = rows[0][1].split()[0]
    for _, _, code in rows:
        sig = code.partition(":")[2]
        if sig.isdigit() and int(sig):
            try:
                return f" {state} (killed by {signal.Signals(int(sig)).name})"
            except ValueError:
                return f" {state} (killed by signal {sig})"
    code = rows[0][2].partition(":")[0]
    return f" {state} (exit code {code})" if code.isdigit() and int(code) else f" {state}"


def check_folder(folder: Path, partition: str | None) -> None:
    """``folder`` must be writable and, when the partition has more than one node, on a shared filesystem:
    the jobs read their pickled arm from it and write their results there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".evsys-probe-{os.getpid()}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"executor.params.folder '{folder}' is not writable ({exc}); give a directory you own")
    fstype = _fstype(folder)
    nodes = _nodes(partition)
    if nodes > 1 and fstype in LOCAL_FS:
        where = f"partition '{partition}'" if partition else "the default partition"
        raise ConfigError(
            f"executor.params.folder '{folder}' is on a local {fstype} filesystem, but {where} has {nodes} nodes: "
            "a job on another node cannot read its arm from there; use a path on a shared filesystem "
            "(NFS, Lustre, GPFS, BeeGFS: your home or scratch directory, e.g. folder: ~/evsys-slurm)"
        )


def _fstype(path: Path) -> str:
    """The type of the filesystem holding ``path`` (the longest mount point above it), '' if unknown."""
    best, kind = "", ""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return ""
    for line in mounts:
        parts = line.split()
        if len(parts) >= 3 and (str(path) + "/").startswith(parts[1].rstrip("/") + "/") and len(parts[1]) >= len(best):
            best, kind = parts[1], parts[2]
    return kind


def _nodes(partition: str | None) -> int:
    """How many nodes the partition (default: the default one) has; 1 when sinfo cannot say."""
    cmd = ["sinfo", "-h", "-o", "%D %P"] + (["-p", partition] if partition else [])
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 1
    rows = [line.split() for line in out.splitlines() if line.strip()]
    if not partition:
        rows = [r for r in rows if len(r) > 1 and r[1].endswith("*")] or rows
    return sum(int(r[0]) for r in rows if r and r[0].isdigit()) or 1
