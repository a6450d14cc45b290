"""``Experiment``: arms, seeded repeats, continual chains, benchmarks, tracking and resume.

It expands the config into arms, trains each through ``run_experiment`` (one arm failing never stops
the others), scores benchmarks, records everything to the tracking store (best effort: a store error is
a warning), and concludes: best arm, group statistics, and for continual chains the stage x benchmark
matrix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evsys_sdk._io import atomic_write_json
from evsys_sdk.callbacks import CallbackSet
from evsys_sdk.config import BenchmarkSpec, ExperimentConfig, RunConfig, safe_run_name
from evsys_sdk.errors import ConfigError
from evsys_sdk.logger import get_logger
from evsys_sdk.progress import Progress
from evsys_sdk.protocols import InferenceClient, InferenceFactory, RunContext, RunResult
from evsys_sdk.results import ArmResult, EvalResult, ExperimentResult
from evsys_sdk.runner import config_fingerprint
from evsys_sdk.step_metrics import forward_step_metrics

log = get_logger("experiment")

TrainFn = Callable[[ExperimentConfig], list[RunResult]]
ARM_RECORD = "arm_result.json"


class ArmFailed(Exception):
    """A training run that ended failed or cancelled; its message is already ``"<Type>: <message>"``."""


def benchmark_specs(raw: Any) -> list[BenchmarkSpec]:
    """``metadata.benchmark`` (None, one mapping, or a list of them) as validated specs."""
    if not raw:
        return []
    entries = raw if isinstance(raw, list) else [raw]
    specs = []
    for i, entry in enumerate(entries):
        where = f"metadata.benchmark[{i}]" if isinstance(raw, list) else "metadata.benchmark"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a mapping with path, id or name (got {type(entry).__name__})")
        try:
            spec = BenchmarkSpec.model_validate(entry)
        except ValidationError as exc:
            from evsys_sdk.validation import pydantic_problems

            raise ConfigError(
                [f"{where}.{'.'.join(map(str, p))}: {m}" for p, m in pydantic_problems(exc, BenchmarkSpec)]
            ) from None
        if spec.name is None:
            spec.name = spec.label(i) if isinstance(raw, list) else (spec.id or spec.path or "benchmark")
        specs.append(spec)
    return specs


def _safe(what: str, fn: Callable[..., Any] | None, *args: Any, **kwargs: Any) -> Any:
    """A store call that may fail without failing anything: bookkeeping is best effort."""
    if fn is None:
        return None
    try:
        return fn(*args, **kwargs)
    except Exception:
        log.warning("tracking store: %s failed", what, exc_info=True)
        return None


def _id(record: Any) -> str | None:
    return str(record["id"]) if isinstance(record, dict) and record.get("id") is not None else None


def _reseeded(run: RunConfig, name: str, seed: int, **update: Any) -> RunConfig:
    """A replicate of ``run``: its seed, and the algorithm's own ``seed`` param when it sets one."""
    algorithm = run.algorithm
    if "seed" in algorithm.params:
        algorithm = algorithm.model_copy(update={"params": {**algorithm.params, "seed": seed}})
    return run.model_copy(update={"name": name, "seed": seed, "algorithm": algorithm, **update})


class Experiment:
    """``Experiment(config).run()``: the whole experiment of one config, recorded to ``store``."""

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        store: Any = None,
        train_fn: TrainFn | None = None,
        benchmark: Any = None,
        inference_factory: InferenceFactory | None = None,
        resume: bool = False,
        progress: Progress | None = None,
    ):
        self.config = config
        self.store = store
        self.train_fn = train_fn
        self.inference_factory = inference_factory
        self.resume = resume
        self._benchmark_override = benchmark
        self._progress = progress
        self._benchmarks: dict[str, Any] = {}

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Experiment:
        from evsys_sdk.yaml_loader import load_yaml

        return cls(load_yaml(path), **kwargs)

    # set-up

    def _resolve_benchmarks(self) -> list[tuple[Any, BenchmarkSpec]]:
        if self._benchmark_override is not None:
            return [(self._benchmark_override, BenchmarkSpec(name="benchmark", path="<given>"))]
        from evsys_sdk.benchmark import Benchmark

        out = []
        for spec in benchmark_specs(self.config.metadata.get("benchmark")):
            try:
                bench = Benchmark.load(spec.model_dump(exclude_none=True), store=self.store)
            except (FileNotFoundError, ValueError) as exc:
                raise ConfigError(f"metadata.benchmark '{spec.name}': {exc}") from None
            if bench is not None:
                out.append((bench, spec))
        return out

    def _iter_runs(self) -> list[RunConfig]:
        """The primaries: ``[run]`` or ``runs`` (``matrix`` is expanded during validation)."""
        return self.config.all_runs()

    def _replicates_for(self, primary: RunConfig) -> list[tuple[RunConfig, str | None]]:
        if self.config.n_repeats == 1:
            return [(primary, None)]
        return [
            (_reseeded(primary, f"{primary.name}__s{seed}", seed), primary.name)
            for seed in self.config.repeat_seeds(primary)
        ]

    # the experiment

    def run(self) -> ExperimentResult:
        from evsys_sdk.yaml_loader import check_config

        cfg = self.config
        check_config(cfg)  # every kind installed and every params block valid, before any arm starts
        meta = cfg.metadata
        benchmarks = self._resolve_benchmarks()
        success_metric = meta.get("success_metric")
        hypothesis = meta.get("hypothesis")
        self.callbacks = CallbackSet(cfg.callbacks, cfg.output_dir)
        self.callbacks.emit("on_experiment_start", cfg.name, cfg)
        tags = list(meta.get("tags") or [])
        experiment_id = _id(
            _safe(
                "create_experiment",
                getattr(self.store, "create_experiment", None),
                experiment_name=cfg.name,
                hypothesis=hypothesis,
                tags=tags or None,
                project_goal_id=meta.get("project_goal_id"),
                config=cfg.model_dump(mode="json"),
            )
        )
        self._progress = self._progress or Progress(len(cfg.arm_names()))
        arms: list[ArmResult] = []
        try:
            baselines = self._score_baselines(benchmarks)
            if cfg.continual is not None:
                arms = self._run_continual(experiment_id, benchmarks)
            else:
                for primary in self._iter_runs():
                    group_id = None
                    if cfg.n_repeats > 1:
                        group_id = self._create_group(experiment_id, primary.name)
                    for run_cfg, group_name in self._replicates_for(primary):
                        arms.append(
                            self._execute_arm(
                                experiment_id, run_cfg, benchmarks, group_id=group_id, group_name=group_name
                            )
                        )
        except KeyboardInterrupt:
            _safe(
                "update_experiment",
                getattr(self.store, "update_experiment", None),
                experiment_id,
                status="cancelled",
                conclusion=f"Cancelled after {len(arms)} arm(s); re-run with --resume to continue.",
            )
            raise
        best = self._pick_best(arms, success_metric) if success_metric else None
        best_score = best.score(success_metric) if best is not None and success_metric else None
        result = ExperimentResult(
            name=cfg.name,
            status="completed" if any(a.status == "completed" for a in arms) else "failed",
            arms=arms,
            best_arm=best,
            best_score=best_score,
            conclusion=self._build_conclusion(arms, best, success_metric),
            experiment_id=experiment_id,
            hypothesis=hypothesis,
            success_metric=success_metric,
            baselines=baselines,
        )
        patch: dict[str, Any] = {"status": result.status, "conclusion": result.conclusion}
        if best_score is not None:
            patch["best_score"] = best_score
        _safe("update_experiment", getattr(self.store, "update_experiment", None), experiment_id, **patch)
        self.callbacks.emit("on_experiment_end", result)
        return result

    def _create_group(self, experiment_id: str | None, name: str) -> str | None:
        self.callbacks.emit("on_group_start", name)
        if experiment_id is None:
            return None
        return _id(_safe("create_group", getattr(self.store, "create_group", None), experiment_id, name))

    # one arm

    def _run_dir(self, name: str) -> Path:
        return Path(self.config.output_dir).expanduser() / safe_run_name(name)

    def _resumable(self, run_cfg: RunConfig) -> ArmResult | None:
        """A completed arm recorded for this exact run config (``--resume``), else None."""
        record = self._run_dir(run_cfg.name) / ARM_RECORD
        if not self.resume or not record.is_file():
            return None
        try:
            data = json.loads(record.read_text(encoding="utf-8"))
            arm = ArmResult.from_json(data["arm"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if data.get("config_fingerprint") != config_fingerprint(run_cfg) or arm.status != "completed":
            return None
        arm.resumed = True
        return arm

    def _execute_arm(
        self,
        experiment_id: str | None,
        run_cfg: RunConfig,
        benchmarks: list[tuple[Any, BenchmarkSpec]],
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        stage: int | None = None,
    ) -> ArmResult:
        store = self.store
        run_id = None
        if experiment_id is not None:
            run_id = _id(
                _safe(
                    "create_run",
                    getattr(store, "create_run", None),
                    experiment_id=experiment_id,
                    group_id=group_id,
                    name=run_cfg.name,
                    recipe_kind=run_cfg.algorithm.kind,
                    run_config=run_cfg.model_dump(mode="json"),
                    seed=run_cfg.seed,
                    status="running",
                )
            )
        self.callbacks.emit("on_run_start", run_cfg.name, run_cfg)
        resumed = self._resumable(run_cfg)
        if resumed is not None:
            resumed.run_id, resumed.group_id, resumed.group_name = run_id, group_id, group_name
            self._progress_skip(run_cfg.name)
            return self._record_arm(resumed, run_id)
        arm = ArmResult(
            name=run_cfg.name,
            run_config=run_cfg,
            status="failed",
            run_id=run_id,
            group_id=group_id,
            group_name=group_name,
            stage=stage,
        )
        try:
            self._train_arm(arm, run_cfg, benchmarks)
            if benchmarks:
                self._eval_arm(arm, run_cfg, benchmarks)
            arm.status = "completed"
            atomic_write_json(
                self._run_dir(run_cfg.name) / ARM_RECORD,
                {"config_fingerprint": config_fingerprint(run_cfg), "arm": arm.to_json()},
            )
        except KeyboardInterrupt:
            arm.status, arm.error = "cancelled", "KeyboardInterrupt: cancelled by the user"
            _safe("update_run", getattr(store, "update_run", None), run_id, status="cancelled", error_message=arm.error)
            raise
        except ArmFailed as exc:
            arm.error = str(exc)
        except Exception as exc:
            arm.error = f"{type(exc).__name__}: {exc}"
        return self._record_arm(arm, run_id)

    def _record_arm(self, arm: ArmResult, run_id: str | None) -> ArmResult:
        update = getattr(self.store, "update_run", None)
        if arm.status == "completed":
            _safe("update_run", update, run_id, status="completed", metrics=arm.summary_metrics())
            for e in arm.evals:
                _safe(
                    "create_eval",
                    getattr(self.store, "create_eval", None),
                    run_id=run_id,
                    metrics=e.metrics,
                    name=e.name,
                    benchmark_id=e.benchmark_id,
                    step=e.step,
                    breakdowns=e.breakdowns or None,
                    tags=e.tags,
                )
            final = (arm.run_result.artifacts if arm.run_result else {}).get("final_checkpoint")
            if final and run_id is not None:
                _safe(
                    "add_checkpoint",
                    getattr(self.store, "add_checkpoint", None),
                    run_id,
                    uri=final,
                    label="final",
                    is_final=True,
                )
        else:
            _safe("update_run", update, run_id, status=arm.status, error_message=arm.error)
        self.callbacks.emit("on_run_end", arm)
        return arm

    def _progress_skip(self, name: str) -> None:
        assert self._progress is not None
        self._progress.start(name)
        self._progress.finish("completed (resumed)")

    def _train_arm(self, arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> None:
        single = self.config.model_copy(
            update={
                "run": run_cfg,
                "runs": None,
                "matrix": None,
                "continual": None,
                "n_repeats": 1,
                "callbacks": [],
            }
        )
        live: list[EvalResult] = []
        start = time.perf_counter()
        if self.train_fn is not None:
            results = self.train_fn(single)
        else:
            from evsys_sdk.runner import run_experiment

            context = {
                "store": self.store,
                "dashboard_run_id": arm.run_id,
                "on_validation_step": self._validation_callback(arm, run_cfg, benchmarks, live),
            }
            results = run_experiment(single, extra_context=context, progress=self._progress, validate=False)
        arm.train_seconds = time.perf_counter() - start
        if not results:
            raise RuntimeError(f"train_fn returned no results for arm '{run_cfg.name}'")
        result = results[0]
        arm.run_result, arm.metrics = result, dict(result.metrics)
        arm.evals.extend(live)
        run_dir = Path(result.artifacts["run_dir"]) if "run_dir" in result.artifacts else self._run_dir(run_cfg.name)
        forward_step_metrics(
            self.store, arm.run_id, run_dir, on_rows=lambda rows: self.callbacks.emit("on_step_metrics", arm.name, rows)
        )
        if result.status != "completed":
            raise ArmFailed(result.error or f"train_fn status={result.status}")

    def _client_for(self, run_result: RunResult, run_cfg: RunConfig) -> InferenceClient | None:
        from evsys_sdk.registry import get_default_inference_factory

        factory = self.inference_factory or get_default_inference_factory(run_cfg)
        if factory is None:
            log.warning(
                "no inference factory serves backend '%s': benchmarks of arm '%s' are skipped",
                run_cfg.backend.kind,
                run_cfg.name,
            )
            return None
        return factory(run_result, run_cfg)

    def _score(self, bench: Any, spec: BenchmarkSpec, client: InferenceClient, step: int | None) -> EvalResult:
        start = time.perf_counter()
        score = bench.score(
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
        metrics = {**score.metrics, **{f"{k}_se": v for k, v in score.stderr.items()}}
        failures = int(score.retry_report.get("total_failures", 0))
        if failures:
            metrics["generation_failures"] = float(failures)
        return EvalResult(
            name=spec.name or "benchmark",
            benchmark_id=spec.id,
            metrics=metrics,
            breakdowns=dict(score.breakdowns),
            eval_seconds=time.perf_counter() - start,
            step=step,
            tags=list(spec.tags),
        )

    def _validation_callback(
        self, arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]], live: list[EvalResult]
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
                    client = self._client_for(RunResult(ctx.run_id, "completed"), run_cfg)
                elif not hasattr(client, "generate"):
                    client = client()
                if client is None:
                    return
                for bench, spec in due:
                    e = self._score(bench, spec, client, step)
                    live.append(e)
                    ctx.log_store.log_metrics({f"val/{e.name}/{k}": v for k, v in e.metrics.items()}, step)
                    self.callbacks.emit("on_benchmark_eval", arm.name, e)
            except Exception:  # a broken validation set must not lose the training run
                log.warning("in-loop validation of arm '%s' at step %d failed", run_cfg.name, step, exc_info=True)

        return on_step

    def _eval_arm(self, arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> None:
        post = [(b, s) for b, s in benchmarks if not s.run_every]
        if post and arm.run_result is not None:
            client = self._client_for(arm.run_result, run_cfg)
            if client is not None:
                for bench, spec in post:
                    e = self._score(bench, spec, client, None)
                    arm.evals.append(e)
                    self.callbacks.emit("on_benchmark_eval", arm.name, e)
        arm.set_primary()

    def _score_baselines(self, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> list[EvalResult]:
        """Closed/API models listed on a benchmark, scored once per experiment (their weights are fixed)."""
        from evsys_sdk.runner import build

        out = []
        for bench, spec in benchmarks:
            for model in spec.models:
                label = model.params.get("model") or model.kind
                try:
                    e = self._score(bench, spec, build("inference_client", model), None)
                except Exception as exc:
                    log.warning("baseline %s on %s failed: %s", label, spec.name, exc)
                    continue
                e.tags = [*e.tags, "baseline", f"model:{label}"]
                out.append(e)
        return out

    # continual learning

    def _run_continual(self, experiment_id: str | None, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> list[ArmResult]:
        cfg = self.config
        assert cfg.continual is not None and cfg.run is not None
        base = cfg.run
        n_stages = len(cfg.continual.datasets)
        labels = [cfg.continual.stage_name(base.name, i) for i in range(n_stages)]
        groups: list[str | None] = [None] * n_stages
        if cfg.n_repeats > 1:
            groups = [self._create_group(experiment_id, label) for label in labels]
        arms = []
        for seed in cfg.repeat_seeds(base):
            prev: str | None = None
            for i, data in enumerate(cfg.continual.datasets):
                name = labels[i] if cfg.n_repeats == 1 else f"{labels[i]}__s{seed}"
                tags = [*base.tags, "continual", f"stage:{i}"] + ([f"seed:{seed}"] if cfg.n_repeats > 1 else [])
                model = base.model.model_copy(update={"init_from_checkpoint": prev}) if i else base.model
                stage = _reseeded(base, name, seed, data=data, model=model, tags=tags)
                arm = self._execute_arm(
                    experiment_id,
                    stage,
                    benchmarks,
                    group_id=groups[i],
                    group_name=labels[i] if cfg.n_repeats > 1 else None,
                    stage=i,
                )
                arms.append(arm)
                if arm.status != "completed":
                    break  # a chain stops at its first stage that does not complete
                artifacts = arm.run_result.artifacts if arm.run_result else {}
                prev = artifacts.get("state-final") or next(
                    (v for k, v in artifacts.items() if k.startswith("state-")), None
                )
                if prev is None:
                    log.warning(
                        "stage '%s' reported no state-final artifact: the next stage starts from the base model", name
                    )
        return arms

    # conclusions

    @staticmethod
    def _pick_best(arms: list[ArmResult], metric: str) -> ArmResult | None:
        best, best_score = None, None
        for arm in arms:
            score = arm.score(metric) if arm.status == "completed" else None
            if score is not None and (best_score is None or score > best_score):
                best, best_score = arm, score
        return best

    @staticmethod
    def _build_conclusion(arms: list[ArmResult], best: ArmResult | None, metric: str | None) -> str:
        done = [a for a in arms if a.status == "completed"]
        if not done:
            return f"All {len(arms)} arms failed."
        parts = []
        if best is not None and metric:
            parts.append(f"Best arm: {best.name} at {metric}={best.score(metric):.4f}.")
        parts.append(f"{len(done)}/{len(arms)} arms completed.")
        failed = [a.name for a in arms if a.status != "completed"]
        if failed:
            parts.append(f"Failed: {', '.join(failed)}.")
        return " ".join(parts)
