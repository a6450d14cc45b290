"""One arm of an experiment, trained and scored: the unit of work every executor runs.

``run_arm(task)`` takes picklable data (the Experiment as the arm sees it, with its one-run config; the
ids the driver gave the arm; the resolved benchmarks), runs ``Experiment._execute_arm`` and returns plain
data (the ArmResult as JSON and the run's step rows). The same function runs in the driver
(``sequential``), in a worker process (``process``) or on a Ray node, so an Experiment subclass's
overrides apply wherever its arms run. It never writes to the tracking store: the driver records what it
returns, so the rule is the same wherever the arm ran (the store may be read, for datasets by id).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.base.logger import get_logger
from evsys_sdk.run.progress import Progress
from evsys_sdk.run.step_metrics import StepRow, find_metrics_file, read_step_rows
from evsys_sdk.spec.config import BenchmarkSpec, ExperimentConfig, RunConfig, safe_run_name
from evsys_sdk.spec.protocols import InferenceClient, RunResult
from evsys_sdk.spec.results import ArmResult, EvalResult

if TYPE_CHECKING:
    from evsys_sdk.orchestration.experiment import Experiment

log = get_logger("arm")

TrainFn = Callable[[ExperimentConfig], list[RunResult]]
ARM_RECORD = "arm_result.json"
FINISHED = ("completed", "stopped")  # what --resume keeps: ran to its end, or to its rung (search.fidelity)


class ArmFailed(Exception):
    """A training run that ended failed or cancelled; its message is already ``"<Type>: <message>"``."""


@dataclass
class ArmTask:
    """Everything one arm needs, picklable: an executor may run it in another process or machine."""

    index: int  # position in the experiment's arm order
    experiment: Experiment  # the experiment as this arm sees it: ``config`` is the arm's one-run config
    experiment_id: str | None = None
    run_id: str | None = None  # the tracking store's run, created by the driver
    group_id: str | None = None
    group_name: str | None = None
    stage: int | None = None
    resume: bool = False
    benchmarks: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # (Benchmark, spec JSON)
    plugins: list[str] = field(default_factory=list)  # hooks modules a worker loads (not installed as entry points)
    store_opener: Callable[[], Any] | None = None  # opens the tracking store in a worker, for reads
    cwd: str = field(default_factory=os.getcwd)  # the driver's: relative paths in the config resolve alike

    @property
    def run(self) -> RunConfig:
        run = self.experiment.config.run
        assert run is not None
        return run

    @property
    def name(self) -> str:
        return self.run.name

    @property
    def max_seconds(self) -> float | None:
        """The arm's time budget (``run.max_seconds``), which executors enforce by killing the arm."""
        return self.run.max_seconds


def over_budget(task: ArmTask) -> dict[str, Any]:
    """What an executor hands back for an arm it killed past its time budget: a failed ArmResult with
    the metrics and step rows the arm had logged (run_arm's shape, so the driver records it as usual)."""
    from evsys_sdk.base.budget import budget_message
    from evsys_sdk.run.step_metrics import last_values

    run_cfg = task.run
    run_dir = Path(task.cwd) / Path(task.experiment.config.output_dir).expanduser() / safe_run_name(run_cfg.name)
    metrics_file = find_metrics_file(run_dir) if run_dir.is_dir() else None
    rows = read_step_rows(metrics_file) if metrics_file is not None else []
    arm = ArmResult(
        name=run_cfg.name,
        run_config=run_cfg,
        status="failed",
        run_id=task.run_id,
        group_id=task.group_id,
        group_name=task.group_name,
        stage=task.stage,
        error=budget_message(task.max_seconds or 0.0),
        metrics=last_values(rows),
    )
    return {"arm": arm.to_json(), "step_rows": rows or None}


def run_arm(task: ArmTask, *, store: Any = None, progress: Progress | None = None) -> dict[str, Any]:
    """Train and score one arm through ``task.experiment._execute_arm``, in whatever process this is.
    Returns ``{"arm": ArmResult JSON, "step_rows": rows or None}``.

    A failure of the arm is a failed ArmResult, never an exception; KeyboardInterrupt propagates.
    ``store`` is read (datasets by id); ``progress`` shows steps when the arm runs in the driver.
    """
    experiment = task.experiment
    experiment.store, experiment._progress = store, progress
    run_cfg = task.run
    benchmarks = [(bench, BenchmarkSpec.model_validate(spec)) for bench, spec in task.benchmarks]
    run_dir = Path(experiment.config.output_dir).expanduser() / safe_run_name(run_cfg.name)
    resumed = resume_outcome(task, run_dir) if task.resume else None
    if resumed is not None:
        if progress is not None:
            progress.start(run_cfg.name)
            progress.finish(f"{resumed['arm']['status']} (resumed)")
        return resumed
    arm = experiment._execute_arm(
        task.experiment_id,
        run_cfg,
        benchmarks,
        experiment.config.metadata,
        group_id=task.group_id,
        group_name=task.group_name,
        run_id=task.run_id,
        stage=task.stage,
    )
    if arm.status in FINISHED:
        atomic_write_json(run_dir / ARM_RECORD, {"config_fingerprint": _fingerprint(run_cfg), "arm": arm.to_json()})
    # The run's step rows travel back with the arm: the driver, maybe on another machine, records them.
    rows = _step_rows(experiment._resolve_run_dir(arm)) if arm.run_result is not None else None
    return {"arm": arm.to_json(), "step_rows": rows}


def resume_outcome(task: ArmTask, run_dir: Path) -> dict[str, Any] | None:
    """What ``run_arm`` returns for an arm ``--resume`` skips (``resumable``), else None: the recorded
    arm with this task's ids, and its step rows, so the resumed experiment's record holds every arm's
    whole timeline."""
    arm = resumable(run_dir, task.run)
    if arm is None:
        return None
    arm.run_id, arm.group_id, arm.group_name = task.run_id, task.group_id, task.group_name
    return {"arm": arm.to_json(), "step_rows": _step_rows(task.experiment._resolve_run_dir(arm))}


def _step_rows(run_dir: Path | None) -> list[StepRow] | None:
    metrics_file = find_metrics_file(run_dir) if run_dir is not None and run_dir.is_dir() else None
    return read_step_rows(metrics_file) if metrics_file is not None else None


def run_arm_in_worker(task: ArmTask, environ: dict[str, str] | None = None) -> dict[str, Any]:
    """``run_arm`` in a process other than the driver's: the driver's working directory (and, from a
    local process pool, its environment), the extra plugins, and the store opened only if used."""
    if environ is not None:
        os.environ.clear()
        os.environ.update(environ)
    if task.cwd and os.path.isdir(task.cwd) and os.getcwd() != task.cwd:
        os.chdir(task.cwd)  # each worker runs one arm at a time, so changing its cwd is safe
    load_plugins(task.plugins)
    store = _LazyStore(task.store_opener) if task.store_opener is not None else None
    try:
        return run_arm(task, store=store, progress=None)
    finally:
        if store is not None:
            store.close()


def load_plugins(modules: list[str]) -> None:
    """Add hooks modules to this process's plugin host, once each (a reused worker keeps them)."""
    if not modules:
        return
    import importlib

    from evsys_sdk.plugins.host import current_host

    host = current_host()
    for name in modules:
        if not host.pm.has_plugin(name):
            host.add_plugin(importlib.import_module(name), name=name)


class _LazyStore:
    """Opens the tracking store at first use: most arms never read it, and opening costs a connection."""

    def __init__(self, opener: Callable[[], Any]):
        self._opener = opener
        self._store: Any = None

    def __getattr__(self, name: str) -> Any:
        if self._store is None:
            self._store = self._opener()
        return getattr(self._store, name)

    def close(self) -> None:
        if self._store is not None and hasattr(self._store, "close"):
            self._store.close()


def _fingerprint(run_cfg: RunConfig) -> str:
    from evsys_sdk.run.runner import config_fingerprint

    return config_fingerprint(run_cfg)


def resumable(run_dir: Path, run_cfg: RunConfig) -> ArmResult | None:
    """The arm finished in ``run_dir`` for this exact run config (``--resume``), else None: its
    ``run_result.json`` (the training run's record) says completed (or stopped at a search's rung), and
    its ``arm_result.json`` (written after it, once the benchmarks were scored) holds the arm with that
    status for this config's fingerprint. A missing, partial or unreadable record of either means the
    arm runs again. (The run's own fingerprint may differ: an executor that requeued the run points it at
    the state it resumed from.)"""
    try:
        run = json.loads((run_dir / "run_result.json").read_text(encoding="utf-8"))
        data = json.loads((run_dir / ARM_RECORD).read_text(encoding="utf-8"))
        arm = ArmResult.from_json(data["arm"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(run, dict) or run.get("status") not in FINISHED:
        return None
    if data.get("config_fingerprint") != _fingerprint(run_cfg) or arm.status != run["status"]:
        return None
    arm.resumed = True
    return arm


def score(bench: Any, spec: BenchmarkSpec, client: InferenceClient, step: int | None) -> EvalResult:
    """One benchmark scored on ``client`` as an EvalResult (post-training when ``step`` is None)."""
    start = time.perf_counter()
    result = bench.score(
        client,
        max_tokens=spec.max_tokens,
        temperature=spec.temperature,
        stop=spec.stop,
        breakdown_keys=spec.breakdown_keys,
        limit=spec.limit,
        metrics=spec.metrics,
        num_samples=spec.num_samples,
        max_concurrency=spec.max_concurrency,
    )
    # Standard errors ride along (``<metric>_se``); so does the count of generations that failed for good.
    metrics = {**result.metrics, **{f"{k}_se": v for k, v in result.stderr.items()}}
    failures = int(result.retry_report.get("total_failures", 0))
    if failures:
        metrics["generation_failures"] = float(failures)
    return EvalResult(
        name=spec.name or "benchmark",
        benchmark_id=spec.id,
        metrics=metrics,
        breakdowns=dict(result.breakdowns),
        eval_seconds=time.perf_counter() - start,
        step=step,
        tags=list(spec.tags),
    )
