"""One arm of an experiment, trained and scored: the unit of work every executor runs.

``run_arm(task)`` takes plain, picklable data (the single-arm config as JSON, the ids the driver gave
the arm, the resolved benchmarks) and returns plain data (the ArmResult as JSON and the run's step
rows). The same function runs in the driver (``sequential``), in a worker process (``process``) or on a
Ray node. It never writes to the tracking store: the driver records what it returns, so the rule is the
same wherever the arm ran (the store may be read, for datasets by id).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk._io import atomic_write_json
from evsys_sdk.config import BenchmarkSpec, ExperimentConfig, RunConfig, safe_run_name
from evsys_sdk.logger import get_logger
from evsys_sdk.progress import Progress
from evsys_sdk.protocols import InferenceClient, InferenceFactory, RunContext, RunResult
from evsys_sdk.results import ArmResult, EvalResult
from evsys_sdk.step_metrics import StepRow, find_metrics_file, read_step_rows

log = get_logger("arm")

TrainFn = Callable[[ExperimentConfig], list[RunResult]]
ARM_RECORD = "arm_result.json"


class ArmFailed(Exception):
    """A training run that ended failed or cancelled; its message is already ``"<Type>: <message>"``."""


@dataclass
class ArmTask:
    """Everything one arm needs, picklable: an executor may run it in another process or machine."""

    index: int  # position in the experiment's arm order
    config: dict[str, Any]  # the single-arm ExperimentConfig as JSON (``run`` is this arm)
    run_id: str | None = None  # the tracking store's run, created by the driver
    group_id: str | None = None
    group_name: str | None = None
    stage: int | None = None
    resume: bool = False
    benchmarks: list[tuple[Any, dict[str, Any]]] = field(default_factory=list)  # (Benchmark, spec JSON)
    train_fn: TrainFn | None = None
    inference_factory: InferenceFactory | None = None
    plugins: list[str] = field(default_factory=list)  # hooks modules a worker loads (not installed as entry points)
    store_opener: Callable[[], Any] | None = None  # opens the tracking store in a worker, for reads
    cwd: str = field(default_factory=os.getcwd)  # the driver's: relative paths in the config resolve alike

    @property
    def name(self) -> str:
        return str(self.config["run"]["name"])

    @property
    def max_seconds(self) -> float | None:
        """The arm's time budget (``run.max_seconds``), which executors enforce by killing the arm."""
        value = self.config["run"].get("max_seconds")
        return float(value) if value is not None else None


def over_budget(task: ArmTask) -> dict[str, Any]:
    """What an executor hands back for an arm it killed past its time budget: a failed ArmResult with
    the metrics and step rows the arm had logged (run_arm's shape, so the driver records it as usual)."""
    from evsys_sdk.budget import budget_message
    from evsys_sdk.step_metrics import last_values

    run_cfg = RunConfig.model_validate(task.config["run"])
    run_dir = Path(task.cwd) / Path(task.config["output_dir"]).expanduser() / safe_run_name(run_cfg.name)
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
    """Train and score one arm. Returns ``{"arm": ArmResult JSON, "step_rows": rows or None}``.

    A failure of the arm is a failed ArmResult, never an exception; KeyboardInterrupt propagates.
    ``store`` is read (datasets by id); ``progress`` shows steps when the arm runs in the driver.
    """
    single = ExperimentConfig.model_validate(task.config)
    assert single.run is not None
    run_cfg = single.run
    benchmarks = [(bench, BenchmarkSpec.model_validate(spec)) for bench, spec in task.benchmarks]
    run_dir = Path(single.output_dir).expanduser() / safe_run_name(run_cfg.name)
    resumed = resumable(run_dir, run_cfg) if task.resume else None
    if resumed is not None:
        if progress is not None:
            progress.start(run_cfg.name)
            progress.finish("completed (resumed)")
        resumed.run_id, resumed.group_id, resumed.group_name = task.run_id, task.group_id, task.group_name
        return {"arm": resumed.to_json(), "step_rows": None}
    arm = ArmResult(
        name=run_cfg.name,
        run_config=run_cfg,
        status="failed",
        run_id=task.run_id,
        group_id=task.group_id,
        group_name=task.group_name,
        stage=task.stage,
    )
    rows: list[list[StepRow]] = []  # filled as soon as training ends, so a failed arm keeps its curves
    try:
        _train(arm, single, task, benchmarks, store, progress, rows)
        if benchmarks:
            _evaluate(arm, run_cfg, benchmarks, task.inference_factory)
        arm.status = "completed"
        atomic_write_json(run_dir / ARM_RECORD, {"config_fingerprint": _fingerprint(run_cfg), "arm": arm.to_json()})
    except ArmFailed as exc:
        arm.error = str(exc)
    except Exception as exc:
        arm.error = f"{type(exc).__name__}: {exc}"
    return {"arm": arm.to_json(), "step_rows": rows[0] if rows else None}


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

    from evsys_sdk.plugins import current_host

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
    from evsys_sdk.runner import config_fingerprint

    return config_fingerprint(run_cfg)


def resumable(run_dir: Path, run_cfg: RunConfig) -> ArmResult | None:
    """The arm recorded completed in ``run_dir`` for this exact run config (``--resume``), else None."""
    record = run_dir / ARM_RECORD
    if not record.is_file():
        return None
    try:
        data = json.loads(record.read_text(encoding="utf-8"))
        arm = ArmResult.from_json(data["arm"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if data.get("config_fingerprint") != _fingerprint(run_cfg) or arm.status != "completed":
        return None
    arm.resumed = True
    return arm


def _train(
    arm: ArmResult,
    single: ExperimentConfig,
    task: ArmTask,
    benchmarks: list[tuple[Any, BenchmarkSpec]],
    store: Any,
    progress: Progress | None,
    rows_out: list[list[StepRow]],
) -> None:
    assert single.run is not None
    run_cfg = single.run
    live: list[EvalResult] = []
    start = time.perf_counter()
    if task.train_fn is not None:
        results = task.train_fn(single)
    else:
        from evsys_sdk.runner import run_experiment

        context = {
            "store": store,
            "dashboard_run_id": task.run_id,
            "on_validation_step": _validation_callback(run_cfg, benchmarks, task.inference_factory, live),
        }
        quiet = progress or Progress(1, enabled=False)  # a worker must not draw on the driver's terminal
        results = run_experiment(single, extra_context=context, progress=quiet, validate=False)
    arm.train_seconds = time.perf_counter() - start
    if not results:
        raise RuntimeError(f"train_fn returned no results for arm '{run_cfg.name}'")
    result = results[0]
    arm.run_result, arm.metrics = result, dict(result.metrics)
    arm.evals.extend(live)
    run_dir = (
        Path(result.artifacts["run_dir"])
        if "run_dir" in result.artifacts
        else Path(single.output_dir).expanduser() / safe_run_name(run_cfg.name)
    )
    metrics_file = find_metrics_file(run_dir) if run_dir.is_dir() else None
    if metrics_file is not None:
        rows_out.append(read_step_rows(metrics_file))
    if result.status != "completed":
        raise ArmFailed(result.error or f"train_fn status={result.status}")


def client_for(
    run_result: RunResult, run_cfg: RunConfig, factory: InferenceFactory | None = None
) -> InferenceClient | None:
    """The inference client serving a finished arm: ``factory``, else the plugin that serves its backend."""
    from evsys_sdk.registry import get_default_inference_factory

    factory = factory or get_default_inference_factory(run_cfg)
    if factory is None:
        log.warning(
            "no inference factory serves backend '%s': benchmarks of arm '%s' are skipped",
            run_cfg.backend.kind,
            run_cfg.name,
        )
        return None
    return factory(run_result, run_cfg)


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


def _validation_callback(
    run_cfg: RunConfig,
    benchmarks: list[tuple[Any, BenchmarkSpec]],
    factory: InferenceFactory | None,
    live: list[EvalResult],
) -> Callable[[RunContext, int, Any], None] | None:
    """Scores the live model on every ``run_every`` entry that is due, as ``val/<name>/<metric>``."""
    val = [(b, s) for b, s in benchmarks if s.run_every]
    if not val:
        return None

    def on_step(ctx: RunContext, step: int, client: Any) -> None:
        due = [(b, s) for b, s in val if s.run_every and step % s.run_every == 0]
        if not due:
            return
        try:
            if client is None:
                client = client_for(RunResult(ctx.run_id, "completed"), run_cfg, factory)
            elif not hasattr(client, "generate"):
                client = client()
            if client is None:
                return
            for bench, spec in due:
                e = score(bench, spec, client, step)
                live.append(e)
                ctx.log_store.log_metrics({f"val/{e.name}/{k}": v for k, v in e.metrics.items()}, step)
        except Exception:  # a broken validation set must not lose the training run
            log.warning("in-loop validation of arm '%s' at step %d failed", run_cfg.name, step, exc_info=True)

    return on_step


def _evaluate(
    arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]], factory: InferenceFactory | None
) -> None:
    post = [(b, s) for b, s in benchmarks if not s.run_every]
    if post and arm.run_result is not None:
        client = client_for(arm.run_result, run_cfg, factory)
        if client is not None:
            for bench, spec in post:
                arm.evals.append(score(bench, spec, client, None))
    arm.set_primary()
