"""``run_experiment``: the per-run lifecycle, from stores to ``run_result.json``.

Config errors (unknown kinds, bad params, duplicate names) raise ConfigError before any run starts.
Everything that fails at run time (data, transforms, prepare, train) becomes a failed RunResult with
its ``run_result.json``; the other runs go on.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import traceback
from pathlib import Path
from typing import Any

from evsys_sdk.base.budget import StepLimitReached, TimeBudget, TimeBudgetExceeded
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.base.logger import get_logger
from evsys_sdk.loading.data import load_rows
from evsys_sdk.loading.yaml_loader import check_config, load_yaml
from evsys_sdk.plugins.registry import registry, resolve_algorithm
from evsys_sdk.run.progress import Progress, ProgressLogStore
from evsys_sdk.run.step_metrics import logged_metrics
from evsys_sdk.spec.config import DataConfig, ExperimentConfig, RunConfig, TransformSpec, _KindSpec, safe_run_name
from evsys_sdk.spec.data_types import row_prompt
from evsys_sdk.spec.protocols import DataStore, LogStore, RunContext, RunResult

log = get_logger("runner")

_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def build(kind: str, spec: _KindSpec) -> Any:
    """Instantiate a registered extension from its ``{kind, params}`` block."""
    return registry(kind).get(spec.kind)(**spec.params)


def config_fingerprint(run: RunConfig) -> str:
    """A stable hash of a run's config: resume skips a run only if its config is unchanged. The time
    budget is left out: it bounds the work, it does not change what a completed run computed."""
    dump = run.model_dump(mode="json", exclude={"max_seconds"})
    return hashlib.sha256(json.dumps(dump, sort_keys=True).encode()).hexdigest()[:16]


def _with_run_seed(cls: Any, run: RunConfig) -> dict[str, Any]:
    """The algorithm's params; its ``seed``, when it has one and the params leave it out, is the run's
    (so ``seed`` and ``n_repeats`` replicates reach every algorithm)."""
    params = dict(run.algorithm.params)
    fields = getattr(getattr(cls, "Config", None), "model_fields", {})
    if "seed" in fields and "seed" not in params:
        params["seed"] = run.seed
    return params


def _load_rows(data: DataConfig, store: DataStore, tracking: Any = None) -> list[dict[str, Any]]:
    """The raw rows of ``data``, by ``source_kind`` (``dataset_id``/``dataset_name`` through the tracking store)."""
    return load_rows(data, store, tracking)


def _apply_transforms(rows: Any, transforms: list[TransformSpec]) -> list[dict[str, Any]]:
    """``rows`` through each transform in order (``transform(rows) -> rows``)."""
    for spec in transforms:
        rows = build("transform", spec)(rows)
    return list(rows)


def _rows(data: DataConfig, store: DataStore, tracking: Any = None) -> list[dict[str, Any]]:
    return _apply_transforms(_load_rows(data, store, tracking), data.transforms)


def run_experiment(
    cfg_or_path: ExperimentConfig | str | Path | dict[str, Any],
    *,
    extra_context: dict[str, Any] | None = None,
    progress: Progress | None = None,
    validate: bool = True,
) -> list[RunResult]:
    """Run every run of the experiment, in order; one RunResult per run.

    ``validate=False`` skips deep validation for a caller that already did it (``Experiment``).
    """
    cfg = cfg_or_path if isinstance(cfg_or_path, ExperimentConfig) else load_yaml(cfg_or_path)
    if cfg.continual is not None or cfg.n_repeats > 1 or cfg.callbacks:
        raise ConfigError(
            "continual, n_repeats and callbacks are handled by the experiment layer, not by run_experiment"
        )
    if validate:
        check_config(cfg)
    out = Path(cfg.output_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    runs = cfg.all_runs()
    progress = progress or Progress(len(runs))
    results = []
    for run in runs:
        progress.start(run.name)
        result = _execute_run(cfg, run, out, extra_context or {}, progress)
        progress.finish(result.status)
        results.append(result)
    return results


def _execute_run(
    cfg: ExperimentConfig, run: RunConfig, out: Path, extra_context: dict[str, Any], progress: Progress
) -> RunResult:
    run_id = safe_run_name(run.name)
    run_dir = out / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    budget = TimeBudget(run.max_seconds) if run.max_seconds is not None else None
    log_store: LogStore | None = None
    result: RunResult
    tb: str | None = None
    try:
        data_store = build("data_store", cfg.data_store)
        log_store = registry("log_store").get(cfg.log_store.kind)(**cfg.log_store.params_for(str(run_dir)))
        backend = build("backend", run.backend)
        rows = _rows(run.data, data_store, extra_context.get("store")) if run.data is not None else []
        algorithm_cls = registry("algorithm").get(resolve_algorithm(run.algorithm.kind, run.backend.kind))
        algorithm = algorithm_cls(**_with_run_seed(algorithm_cls, run))
        model = run.model.model_dump()
        handles = backend.prepare(model=model, run_dir=str(run_dir))
        try:
            extras = {
                "train_rows": rows,
                "n_train_rows": len(rows),
                "backend_handles": handles,
                "model_name": handles.get("model_name") or run.model.name,
                "tags": list(run.tags),
                "run_config": run,
                **extra_context,
            }
            ctx = RunContext(
                run_id=run_id,
                output_dir=str(run_dir),
                config=cfg,
                data_store=data_store,
                backend=backend,
                log_store=ProgressLogStore(log_store, progress) if progress.enabled else log_store,
                extras=extras,
                budget=budget,
            )
            if hasattr(log_store, "start_run"):  # a store that logs per run elsewhere learns which run
                log_store.start_run(ctx)
            log_store.log_hyperparams(
                {
                    "experiment_name": cfg.name,
                    "run_name": run.name,
                    "model": model,
                    "backend": run.backend.model_dump(),
                    "tags": list(run.tags),
                }
            )
            result = algorithm.train(ctx)
        finally:
            try:
                backend.teardown(handles)
            except Exception:
                log.exception("teardown of run '%s' failed", run.name)
        if result.status == "completed" and run.eval.enabled and run.eval.metrics:
            _run_eval(run, rows, data_store, log_store, result)
    except KeyboardInterrupt:
        result = RunResult(run_id, "cancelled", error="KeyboardInterrupt: cancelled by the user")
        _finish(run, run_dir, log_store, result, started, None)
        raise
    except TimeBudgetExceeded as exc:
        # A run stopped part-way keeps what it had reached: the last value of each metric it logged.
        result = RunResult(run_id, "failed", error=str(exc))
        _finish(run, run_dir, log_store, result, started, None, partial=True)
        return result
    except StepLimitReached as exc:
        result = RunResult(run_id, "stopped", error=str(exc))
        _finish(run, run_dir, log_store, result, started, None, partial=True, steps=exc.step)
        return result
    except Exception as exc:
        result = RunResult(run_id, "failed", error=f"{type(exc).__name__}: {exc}")
        tb = traceback.format_exc()
        log.debug("run '%s' failed:\n%s", run.name, tb)
    _finish(run, run_dir, log_store, result, started, tb)
    return result


def _finish(
    run: RunConfig,
    run_dir: Path,
    log_store: LogStore | None,
    result: RunResult,
    started: float,
    tb: str | None,
    *,
    partial: bool = False,
    steps: int | None = None,
) -> None:
    if log_store is not None:
        try:
            if hasattr(log_store, "end_run"):
                log_store.end_run(result.status)
            log_store.close()
        except Exception:
            log.exception("closing the log store of run '%s' failed", run.name)
    if partial:
        result.metrics = logged_metrics(run_dir)
    if steps is not None:  # a stopped run ran exactly these steps
        result.metrics["total_steps"] = float(steps)
    record = {
        "run_id": result.run_id,
        "status": result.status,
        "metrics": result.metrics,
        "artifacts": result.artifacts,
        "error": result.error,
        "hparams": run.model_dump(mode="json"),
        "config_fingerprint": config_fingerprint(run),
        "seconds": round(time.time() - started, 4),
        "ts": time.time(),
    }
    if tb:
        record["traceback"] = tb
    atomic_write_json(run_dir / "run_result.json", record)


def _eval_client(run: RunConfig, result: RunResult) -> Any:
    """``eval.inference`` when given, else the backend's default factory serving the trained checkpoint."""
    if run.eval.inference is not None:
        return build("inference_client", run.eval.inference)
    from evsys_sdk.plugins.registry import get_default_inference_factory

    factory = get_default_inference_factory(run)
    return factory(result, run) if factory is not None else None


def _run_eval(
    run: RunConfig, train_rows: list[dict[str, Any]], store: DataStore, log_store: LogStore, result: RunResult
) -> None:
    """Best-effort eval over the run's rows (or ``eval.eval_data``); a failure never fails the run."""
    from evsys_sdk.builtins.metrics import compute_metric
    from evsys_sdk.builtins.verifier_fns import verify_task
    from evsys_sdk.spec.data_types import detect_format, harbor_task_from_dict

    try:
        rows = _rows(run.eval.eval_data, store) if run.eval.eval_data is not None else train_rows
        rows = rows[: run.eval.n_samples] if run.eval.n_samples is not None else rows
        client = _eval_client(run, result)
        if client is None:
            log.warning("run '%s' has eval metrics but no eval.inference and no default inference factory", run.name)
            return
        predictions, targets, rewards = [], [], []
        for row in rows:
            try:
                completion = client.generate(prompt=row_prompt(row), max_tokens=256, temperature=0.0)
            except Exception:
                log.warning("eval generate failed for a row of run '%s'", run.name, exc_info=True)
                completion = ""
            m = _ANSWER.search(completion)
            answer = (m.group(1) if m else completion).strip()
            if detect_format(row) == "harbor_task":
                task = harbor_task_from_dict(row)
                expected = getattr(task.verifier, "expected", None)
                reward = verify_task(task, completion).reward
            else:
                expected = row.get("tool_slug", row.get("answer"))
                reward = float(expected is not None and answer == str(expected).strip())
            predictions.append({"answer": answer, "completion": completion, "reward": reward})
            targets.append({"answer": expected, "tool_slug": expected, "toolkit": row.get("toolkit", "")})
            rewards.append([reward])
    except Exception:
        log.warning("eval of run '%s' failed", run.name, exc_info=True)
        return
    values: dict[str, float] = {}
    for spec in run.eval.metrics:
        try:
            values[f"eval/{spec.kind}"] = float(
                compute_metric(build("metric", spec), task_rewards=rewards, predictions=predictions, targets=targets)
            )
        except Exception:
            log.warning("eval metric '%s' of run '%s' failed", spec.kind, run.name, exc_info=True)
    result.metrics.update(values)
    if values:
        log_store.log_metrics(values, int(result.metrics.get("total_steps", 1)))
