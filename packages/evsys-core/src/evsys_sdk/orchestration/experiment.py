"""``Experiment``: arms, seeded repeats, continual chains, benchmarks, tracking and resume.

It expands the config into arms, hands each to the configured executor, which runs ``evsys_sdk.orchestration.arm``
(train through ``train_fn``, by default ``run_experiment``, then score benchmarks; one arm failing never
stops the others), records what comes back to the tracking store (the driver alone writes it; best
effort: a store error is a warning), and concludes: best arm, group statistics, and for continual chains
the stage x benchmark matrix. Arms are recorded in sequential order whatever the executor.

Every step is a method (``_iter_runs``, ``_replicates_for``, ``_resolve_benchmarks``, ``_execute_arm``,
``_train_arm``, ``_eval_arm``, ``_resolve_inference_factory``, ``_pick_best``, ``_build_conclusion``, the
store writes ``_create_*``/``_mark_run_*``/``_record_eval``/``_finalize_experiment``), so a subclass
changes one step by overriding it. Arm steps run where the executor runs the arm: other executors get
the Experiment by pickle, which rebuilds a subclass from its import path (so it must be importable: a
module-level class).
"""

from __future__ import annotations

import copy
import heapq
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from evsys_sdk.base.budget import StepLimitReached
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.base.logger import get_logger
from evsys_sdk.orchestration.arm import ARM_RECORD, ArmFailed, ArmTask, TrainFn, score
from evsys_sdk.orchestration.executors import Executor, build_executor, picklable_problem
from evsys_sdk.run.callbacks import CallbackSet
from evsys_sdk.run.progress import Progress
from evsys_sdk.run.step_metrics import send_step_rows
from evsys_sdk.spec.config import BenchmarkSpec, ExperimentConfig, RunConfig, safe_run_name
from evsys_sdk.spec.protocols import InferenceClient, InferenceFactory, RunContext, RunResult
from evsys_sdk.spec.results import ArmResult, EvalResult, ExperimentResult
from evsys_sdk.tracking.conclusions import Expectation, best_of, conclude, group_scores

log = get_logger("experiment")

__all__ = ["ARM_RECORD", "ArmFailed", "Experiment", "TrainFn", "benchmark_specs"]


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
            from evsys_sdk.spec.problems import pydantic_problems

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


# What ``Experiment(feed=...)`` calls with each recorded arm: more runs to queue, each with its stop step.
Feed = Callable[[ArmResult], list[tuple[RunConfig, int | None]]]


@dataclass
class _Chain:
    """Arms that run in order, each stage starting from the last one's state (one stage: a plain arm)."""

    runs: list[RunConfig]
    groups: list[str | None]  # the replicate group of each stage, None when ungrouped
    continual: bool = False
    next: int = 0  # the stage to submit next
    state: str | None = None  # the previous stage's checkpoint


@dataclass
class _InFlight:
    chain: int
    stage: int
    task: ArmTask


class Experiment:
    """``Experiment(config).run()``: the whole experiment of one config, recorded to ``store``.

    ``train_fn(one_arm_config) -> [RunResult]`` trains one arm (default ``_default_train_fn``:
    ``run_experiment``). ``executor`` (an Executor instance) overrides ``config.executor``; the caller
    then owns its start-up and close, so one engine can serve several experiments.
    """

    # Driver-only state: never shipped with an arm (the worker's process supplies its own store).
    _DRIVER_ONLY = ("store", "_progress", "_executor", "callbacks", "_groups", "_feed")

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
        executor: Executor | None = None,
        stop_at: dict[str, int] | None = None,
        feed: Feed | None = None,
    ):
        """``stop_at`` stops arms (by group name, else run name) once their in-loop validation has scored
        that step: ``evsys evolve``'s rungs (``search.fidelity``); such an arm ends ``stopped``. ``feed``
        hears every arm as it is recorded and answers more runs (each with its ``stop_at`` step or None)
        to queue behind the ones already waiting: ``evsys evolve`` refills its places this way."""
        self.config = config
        self.stop_at = dict(stop_at or {})
        self._feed = feed
        self.store = store
        self.train_fn = train_fn  # None selects the default
        self.inference_factory = inference_factory
        self.resume = resume
        self._benchmark_override = benchmark
        self._progress = progress
        self._executor = executor
        self._arm: ArmResult | None = None  # the arm being trained (in its own copy of the Experiment)
        self._arm_benchmarks: list[tuple[Any, BenchmarkSpec]] = []
        self._expect: Expectation | None = None  # metadata.expect, read when the experiment starts

    @property
    def train_fn(self) -> TrainFn:
        """The user's ``train_fn``, else ``_default_train_fn`` (bound to this instance, so to each arm's copy)."""
        return self._train_fn or self._default_train_fn

    @train_fn.setter
    def train_fn(self, fn: TrainFn | None) -> None:
        self._train_fn = fn

    @classmethod
    def from_yaml(cls, path: str | Path, **kwargs: Any) -> Experiment:
        from evsys_sdk.loading.yaml_loader import load_yaml

        return cls(load_yaml(path), **kwargs)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._DRIVER_ONLY}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.store = self._progress = None

    # set-up

    def _resolve_benchmarks(self, raw: Any) -> list[tuple[Any, BenchmarkSpec]]:
        """``metadata.benchmark`` (None, one mapping or a list) loaded; ``benchmark=`` given to the
        constructor replaces it (a test seam)."""
        if self._benchmark_override is not None:
            return [(self._benchmark_override, BenchmarkSpec(name="benchmark", path="<given>"))]
        from evsys_sdk.eval.benchmark import Benchmark

        out = []
        for spec in benchmark_specs(raw):
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
        """``[(primary, None)]``, or with ``n_repeats`` > 1 one reseeded ``<name>__s<seed>`` per seed,
        grouped under the primary's name."""
        if self.config.n_repeats == 1:
            return [(primary, None)]
        return [
            (_reseeded(primary, f"{primary.name}__s{seed}", seed), primary.name)
            for seed in self.config.repeat_seeds(primary)
        ]

    def _chains(self) -> list[_Chain]:
        """The arms in result order: one chain per arm, or per seed of a continual experiment."""
        cfg = self.config
        if cfg.continual is None:
            return [
                _Chain([run_cfg], [group])
                for primary in self._iter_runs()
                for run_cfg, group in self._replicates_for(primary)
            ]
        assert cfg.run is not None
        base = cfg.run
        labels = [cfg.continual.stage_name(base.name, i) for i in range(len(cfg.continual.datasets))]
        chains = []
        for seed in cfg.repeat_seeds(base):
            runs = []
            for i, data in enumerate(cfg.continual.datasets):
                name = labels[i] if cfg.n_repeats == 1 else f"{labels[i]}__s{seed}"
                tags = [*base.tags, "continual", f"stage:{i}"] + ([f"seed:{seed}"] if cfg.n_repeats > 1 else [])
                runs.append(_reseeded(base, name, seed, data=data, tags=tags))
            chains.append(_Chain(runs, [label if cfg.n_repeats > 1 else None for label in labels], continual=True))
        return chains

    # the experiment

    def run(self) -> ExperimentResult:
        from evsys_sdk.loading.yaml_loader import check_config

        cfg = self.config
        if cfg.search is not None:
            from evsys_sdk.spec.source import format_problems

            msg = "this config is a search: run it with `evsys evolve PATH` (evsys run runs one experiment)"
            raise ConfigError(format_problems([(("search",), msg)], cfg._source))
        check_config(cfg)  # every kind installed and every params block valid, before any arm starts
        meta = cfg.metadata
        self._expect = Expectation.from_metadata(meta, cfg._source)
        benchmarks = self._resolve_benchmarks(meta.get("benchmark"))
        success_metric = meta.get("success_metric")
        hypothesis = meta.get("hypothesis")
        owned = self._executor is None
        executor = self._executor or build_executor(cfg.executor.kind, cfg.executor.params)
        if not executor.in_process:
            self._check_shippable(executor, benchmarks)
        self.callbacks = CallbackSet(cfg.callbacks, cfg.output_dir)
        self.callbacks.emit("on_experiment_start", cfg.name, cfg)
        experiment_id = self._create_experiment(hypothesis, list(meta.get("tags") or []), meta)
        self._progress = self._progress or Progress(len(cfg.arm_names()))
        self._groups: dict[str, str | None] = {}
        finished: dict[tuple[int, int], ArmResult] = {}
        try:
            baselines = self._score_baselines(benchmarks)
            self._record_baselines(experiment_id, baselines)
            chains = self._chains()
            if cfg.continual is not None and cfg.n_repeats > 1:
                for label in chains[0].groups:  # every stage's group up front, as the stages are known
                    self._group(experiment_id, label)
            executor.start()
            self._drive(executor, chains, experiment_id, benchmarks, finished)
        except KeyboardInterrupt:
            conclusion = f"Cancelled after {len(finished)} arm(s); re-run with --resume to continue."
            self._finalize_experiment(experiment_id, "cancelled", None, conclusion)
            raise
        finally:
            if owned:
                executor.close()
        arms = [finished[key] for key in sorted(finished)]
        best = self._pick_best(arms, success_metric) if success_metric else None
        best_group = best.group_name if best is not None else None
        best_score = None
        if best is not None and success_metric:  # with repeats, the best group's mean
            best_score = (
                statistics.fmean(group_scores(arms, success_metric)[best_group])
                if best_group
                else best.score(success_metric)
            )
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
            best_group=best_group,
        )
        self._finalize_experiment(experiment_id, result.status, best_score, result.conclusion)
        self.callbacks.emit("on_experiment_end", result)
        return result

    def _check_shippable(self, executor: Executor, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> None:
        """Arms leaving this process carry the Experiment (its class by import path, its train_fn and
        inference_factory) and the benchmarks by pickle: fail before any arm if they cannot."""
        arm_view = self._for_arm(self._single_config(self._iter_runs()[0]))
        cls = type(self)
        problems = [
            _unimportable_problem(cls),
            picklable_problem("the benchmarks", [b for b, _ in benchmarks]),
            picklable_problem("train_fn", self._train_fn),
            picklable_problem("inference_factory", self.inference_factory),
        ]
        if not any(problems):
            problems.append(picklable_problem(f"the Experiment subclass '{cls.__qualname__}'", arm_view))
        found = [p for p in problems if p]
        if found:
            raise ConfigError(
                f"executor '{executor.name}' runs arms in other processes: "
                + "; ".join(found)
                + " (use module-level functions and classes, or executor kind 'sequential')"
            )

    def _for_arm(self, single: ExperimentConfig) -> Experiment:
        """This Experiment as one arm sees it: ``config`` is that arm's one-run config, and the driver's
        bookkeeping stays behind (the process running the arm sets its own store and progress line)."""
        view = copy.copy(self)
        view.config = single
        return view

    def _single_config(self, run_cfg: RunConfig) -> ExperimentConfig:
        """The one-arm ExperimentConfig ``train_fn`` receives: this experiment with ``run_cfg`` as its run."""
        return self.config.model_copy(
            update={"run": run_cfg, "runs": None, "matrix": None, "continual": None, "n_repeats": 1, "callbacks": []}
        )

    def _group(self, experiment_id: str | None, label: str | None) -> str | None:
        """The replicate group ``label``'s id, created at its first arm."""
        if label is None:
            return None
        if label not in self._groups:
            self._groups[label] = self._create_group(experiment_id, label)
        return self._groups[label]

    # tracking-store writes (the driver's alone; best effort)

    def _create_experiment(self, hypothesis: str | None, tags: list[str], meta: dict[str, Any]) -> str | None:
        """The experiment's record. A resumed one is a new, complete record (resumed arms bring back their
        curves and evals) linked both ways to the record it continues: ``resumed_from`` on the new one,
        ``resumed_as`` on the old one, found by name in stores that can look up (``find_experiment``)."""
        previous = None
        if self.resume:
            found = _safe("find_experiment", getattr(self.store, "find_experiment", None), self.config.name)
            previous = _id(found)
        link = {"resumed_from": previous} if previous else {}
        experiment_id = _id(
            _safe(
                "create_experiment",
                getattr(self.store, "create_experiment", None),
                experiment_name=self.config.name,
                hypothesis=hypothesis,
                tags=tags or None,
                project_goal_id=meta.get("project_goal_id"),
                config=self.config.model_dump(mode="json"),
                **link,
            )
        )
        if previous and experiment_id:
            _safe(
                "update_experiment", getattr(self.store, "update_experiment", None), previous, resumed_as=experiment_id
            )
        return experiment_id

    def _create_group(self, experiment_id: str | None, name: str) -> str | None:
        """Register a run group for a variance study; its id (or None)."""
        self.callbacks.emit("on_group_start", name)
        if experiment_id is None:
            return None
        return _id(_safe("create_group", getattr(self.store, "create_group", None), experiment_id, name))

    def _create_run(self, experiment_id: str | None, run_cfg: RunConfig, *, group_id: str | None = None) -> str | None:
        if experiment_id is None:
            return None
        return _id(
            _safe(
                "create_run",
                getattr(self.store, "create_run", None),
                experiment_id=experiment_id,
                group_id=group_id,
                name=run_cfg.name,
                recipe_kind=run_cfg.algorithm.kind,
                run_config=run_cfg.model_dump(mode="json"),
                seed=run_cfg.seed,
                status="running",
            )
        )

    def _mark_run_completed(self, run_id: str | None, arm: ArmResult) -> None:
        _safe(
            "update_run",
            getattr(self.store, "update_run", None),
            run_id,
            status="completed",
            metrics=arm.summary_metrics(),
        )

    def _mark_run_failed(
        self, run_id: str | None, error: str | None, *, status: str = "failed", metrics: dict[str, float] | None = None
    ) -> None:
        """The run ended without completing: ``failed``, or ``cancelled`` by the user; with the metrics
        it had reached, if any."""
        partial = {"metrics": metrics} if metrics else {}
        _safe(
            "update_run",
            getattr(self.store, "update_run", None),
            run_id,
            status=status,
            error_message=error,
            **partial,
        )

    def _record_eval(self, arm: ArmResult, evaluation: EvalResult) -> None:
        self._create_eval(arm.run_id, evaluation)

    def _create_eval(self, run_id: str | None, evaluation: EvalResult) -> None:
        _safe(
            "create_eval",
            getattr(self.store, "create_eval", None),
            run_id=run_id,
            metrics=evaluation.metrics,
            name=evaluation.name,
            benchmark_id=evaluation.benchmark_id,
            step=evaluation.step,
            breakdowns=evaluation.breakdowns or None,
            tags=evaluation.tags,
        )

    def _forward_step_metrics(self, arm: ArmResult, rows: list[tuple[int, str, dict[str, float]]]) -> None:
        """Push the arm's step rows (read from its metrics.jsonl where it trained) to the store."""
        send_step_rows(self.store, arm.run_id, rows)

    def _finalize_experiment(
        self, experiment_id: str | None, status: str, best_score: float | None, conclusion: str
    ) -> None:
        patch: dict[str, Any] = {"status": status, "conclusion": conclusion}
        if best_score is not None:
            patch["best_score"] = best_score
        _safe("update_experiment", getattr(self.store, "update_experiment", None), experiment_id, **patch)

    # arms, through the executor

    def _drive(
        self,
        executor: Executor,
        chains: list[_Chain],
        experiment_id: str | None,
        benchmarks: list[tuple[Any, BenchmarkSpec]],
        finished: dict[tuple[int, int], ArmResult],
    ) -> None:
        """Keep up to ``executor.slots`` arms in flight, the earliest ready chain first, and record each
        arm as it comes back. With one slot this is exactly the sequential order."""
        inflight: dict[Any, _InFlight] = {}
        ready = list(range(len(chains)))  # a heap of chain indexes: the earliest ready chain goes next
        try:
            while True:
                while ready and len(inflight) < executor.slots:
                    index = heapq.heappop(ready)
                    handle, item = self._submit(executor, chains[index], index, experiment_id, benchmarks)
                    inflight[handle] = item
                if not inflight:
                    return
                for handle, outcome in executor.wait(list(inflight)):
                    item = inflight.pop(handle)
                    arm = self._collect(executor, item, outcome)
                    finished[(item.chain, item.stage)] = arm
                    for run_cfg, stop in self._feed(arm) if self._feed is not None else []:
                        if stop is not None:
                            self.stop_at[run_cfg.name] = stop
                        for replicate, group in self._replicates_for(run_cfg):
                            chains.append(_Chain([replicate], [group]))
                            heapq.heappush(ready, len(chains) - 1)
                    chain = chains[item.chain]
                    chain.next += 1
                    # A chain stops at its first stage that does not complete.
                    if arm.status == "completed" and chain.next < len(chain.runs):
                        chain.state = self._final_state_checkpoint(arm)
                        heapq.heappush(ready, item.chain)
        except KeyboardInterrupt:
            executor.cancel(list(inflight))
            for item in inflight.values():
                self._mark_run_failed(item.task.run_id, "KeyboardInterrupt: cancelled by the user", status="cancelled")
            raise

    def _submit(
        self,
        executor: Executor,
        chain: _Chain,
        index: int,
        experiment_id: str | None,
        benchmarks: list[tuple[Any, BenchmarkSpec]],
    ) -> tuple[Any, _InFlight]:
        stage = chain.next
        run_cfg = chain.runs[stage]
        if chain.continual and stage:
            run_cfg = run_cfg.model_copy(
                update={"model": run_cfg.model.model_copy(update={"init_from_checkpoint": chain.state})}
            )
        label = chain.groups[stage]
        group_id = self._group(experiment_id, label)
        run_id = self._create_run(experiment_id, run_cfg, group_id=group_id)
        self.callbacks.emit("on_run_start", run_cfg.name, run_cfg)
        task = ArmTask(
            index=index,
            experiment=self._for_arm(self._single_config(run_cfg)),
            experiment_id=experiment_id,
            run_id=run_id,
            group_id=group_id,
            group_name=label,
            stage=stage if chain.continual else None,
            resume=self.resume,
            benchmarks=[(b, s.model_dump(mode="json")) for b, s in benchmarks],
            plugins=executor.plugins,
            store_opener=None if executor.in_process else _store_opener(self.store),
        )
        handle = executor.submit(task, store=self.store, progress=self._progress if executor.in_process else None)
        return handle, _InFlight(index, stage, task)

    def _collect(self, executor: Executor, item: _InFlight, outcome: Any) -> ArmResult:
        """The arm an executor handed back, recorded: step rows, eval events, the store's run, callbacks."""
        task = item.task
        rows = None
        if isinstance(outcome, BaseException):
            cancelled = isinstance(outcome, KeyboardInterrupt)  # a worker interrupted on its own
            error = f"{type(outcome).__name__}: {outcome}"
            arm = ArmResult(
                name=task.name,
                run_config=task.run,
                status="cancelled" if cancelled else "failed",
                run_id=task.run_id,
                group_id=task.group_id,
                group_name=task.group_name,
                stage=task.stage,
                error="KeyboardInterrupt: cancelled by the user" if cancelled else error,
            )
        else:
            arm = ArmResult.from_json(outcome["arm"])
            rows = outcome.get("step_rows")
        if not executor.in_process:
            assert self._progress is not None
            self._progress.start(arm.name)
            self._progress.finish(f"{arm.status} (resumed)" if arm.resumed else arm.status)
        for e in arm.evals:
            if e.step is not None:
                self.callbacks.emit("on_benchmark_eval", arm.name, e)
        if rows is not None:
            rows = [(int(step), str(split), dict(metrics)) for step, split, metrics in rows]
            self.callbacks.emit("on_step_metrics", arm.name, rows)
            self._forward_step_metrics(arm, rows)
        for e in arm.evals:
            if e.step is None:
                self.callbacks.emit("on_benchmark_eval", arm.name, e)
        return self._record_arm(arm)

    def _record_arm(self, arm: ArmResult) -> ArmResult:
        if arm.status == "completed":
            self._mark_run_completed(arm.run_id, arm)
            for e in arm.evals:
                self._record_eval(arm, e)
            final = self._final_checkpoint(arm)
            if final and arm.run_id is not None:
                _safe(
                    "add_checkpoint",
                    getattr(self.store, "add_checkpoint", None),
                    arm.run_id,
                    uri=final,
                    label="final",
                    is_final=True,
                )
        else:  # a failed arm keeps the metrics it had reached (an arm stopped by its time budget)
            self._mark_run_failed(arm.run_id, arm.error, status=arm.status, metrics=arm.metrics)
            if arm.status == "stopped":  # stopped at a rung: its in-loop scores are its record
                for e in arm.evals:
                    self._record_eval(arm, e)
        self.callbacks.emit("on_run_end", arm)
        return arm

    def _record_baselines(self, experiment_id: str | None, baselines: list[EvalResult]) -> None:
        """Each baseline model as a run of kind ``baseline`` beside the arms, with an eval per benchmark."""
        from evsys_sdk.spec.results import baseline_model
        from evsys_sdk.tracking.records import BASELINE_KIND

        if experiment_id is None:
            return
        runs: dict[str, str | None] = {}
        seen: dict[tuple[str, str], int] = {}
        for e in baselines:
            model = baseline_model(e)
            nth = seen[(model, e.name)] = seen.get((model, e.name), 0) + 1  # two specs of one model stay apart
            name = f"baseline {model}" + (f" #{nth}" if nth > 1 else "")
            if name not in runs:
                runs[name] = _id(
                    _safe(
                        "create_run",
                        getattr(self.store, "create_run", None),
                        experiment_id=experiment_id,
                        name=name,
                        recipe_kind=BASELINE_KIND,
                        run_config={"model": model},
                        status="completed",
                    )
                )
            if runs[name] is not None:
                self._create_eval(runs[name], e)

    def _score_baselines(self, benchmarks: list[tuple[Any, BenchmarkSpec]]) -> list[EvalResult]:
        """Closed/API models listed on a benchmark, scored once per experiment (their weights are fixed)."""
        from evsys_sdk.run.runner import build

        out = []
        for bench, spec in benchmarks:
            for model in spec.models:
                label = model.params.get("model") or model.kind
                try:
                    e = score(bench, spec, build("inference_client", model), None)
                except Exception as exc:
                    log.warning("baseline %s on %s failed: %s", label, spec.name, exc)
                    continue
                e.tags = [*e.tags, "baseline", f"model:{label}"]
                out.append(e)
        return out

    # one arm, where the executor runs it (``self`` is the arm's view: ``_for_arm``)

    def _execute_arm(
        self,
        experiment_id: str | None,
        run_cfg: RunConfig,
        benchmarks: list[tuple[Any, BenchmarkSpec]],
        meta: dict[str, Any],
        *,
        group_id: str | None = None,
        group_name: str | None = None,
        run_id: str | None = None,
        stage: int | None = None,
    ) -> ArmResult:
        """Train and score one arm. Its failure is a failed ArmResult, never an exception; KeyboardInterrupt
        propagates. The driver created ``run_id`` and records the result."""
        arm = ArmResult(
            name=run_cfg.name,
            run_config=run_cfg,
            status="failed",
            run_id=run_id,
            group_id=group_id,
            group_name=group_name,
            stage=stage,
        )
        self._arm_benchmarks = benchmarks  # in-loop validation scores these during training
        try:
            self._train_arm(arm, run_cfg)
            if arm.status == "stopped":  # at its rung: the in-loop scores are its result
                return arm
            if benchmarks:
                self._eval_arm(arm, run_cfg, benchmarks, meta)
            arm.status = "completed"
        except ArmFailed as exc:
            arm.error = str(exc)
        except Exception as exc:
            arm.error = f"{type(exc).__name__}: {exc}"
        return arm

    def _train_arm(self, arm: ArmResult, run_cfg: RunConfig) -> ArmResult:
        """``train_fn`` on the arm's one-run config; its first RunResult and metrics go on ``arm``."""
        self._arm = arm
        start = time.perf_counter()
        results = self.train_fn(self._single_config(run_cfg))
        arm.train_seconds = time.perf_counter() - start
        if not results:
            raise RuntimeError(f"train_fn returned no results for arm '{run_cfg.name}'")
        result = results[0]
        arm.run_result, arm.metrics = result, dict(result.metrics)
        if result.status == "stopped":
            arm.status, arm.error = "stopped", result.error
        elif result.status != "completed":
            raise ArmFailed(result.error or f"train_fn status={result.status}")
        return arm

    def _default_train_fn(self, config: ExperimentConfig) -> list[RunResult]:
        """``run_experiment`` on the one-arm config, with this process's store, the arm's run id, its
        in-loop benchmarks and (in the driver) the progress line."""
        from evsys_sdk.run.runner import run_experiment

        assert config.run is not None
        context = {
            "store": self.store,
            "dashboard_run_id": self._arm.run_id if self._arm is not None else None,
            "on_validation_step": self._validation_callback(config.run),
        }
        quiet = self._progress or Progress(1, enabled=False)  # a worker must not draw on the driver's terminal
        return run_experiment(config, extra_context=context, progress=quiet, validate=False)

    def _validation_callback(self, run_cfg: RunConfig) -> Callable[[RunContext, int, Any], None] | None:
        """Scores the live model on every ``run_every`` benchmark that is due, as ``val/<name>/<metric>``,
        onto the arm being trained."""
        val = [(b, s) for b, s in self._arm_benchmarks if s.run_every]
        arm = self._arm
        if not val or arm is None:
            return None
        stop = self.stop_at.get(arm.group_name or arm.name)

        def on_step(ctx: RunContext, step: int, client: Any) -> None:
            due = [(b, s) for b, s in val if s.run_every and step % s.run_every == 0]
            if not due:
                return
            try:
                if client is None:
                    client = self._client(RunResult(ctx.run_id, "completed"), run_cfg)
                elif not hasattr(client, "generate"):
                    client = client()
                if client is None:
                    return
                for bench, spec in due:
                    e = score(bench, spec, client, step)
                    arm.evals.append(e)
                    ctx.log_store.log_metrics({f"val/{e.name}/{k}": v for k, v in e.metrics.items()}, step)
            except Exception:  # a broken validation set must not lose the training run
                log.warning("in-loop validation of arm '%s' at step %d failed", run_cfg.name, step, exc_info=True)
            if stop is not None and step >= stop:
                raise StepLimitReached(step, f"stopped at rung {stop}")

        return on_step

    def _eval_arm(
        self, arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]], meta: dict[str, Any]
    ) -> ArmResult:
        """Score the trained arm on each post-training benchmark (``run_every`` ones ran in the loop) and
        mirror the primary eval into the flat fields."""
        post = [(b, s) for b, s in benchmarks if not s.run_every]
        if post and arm.run_result is not None:
            client = self._client(arm.run_result, run_cfg)
            if client is not None:
                for bench, spec in post:
                    arm.evals.append(score(bench, spec, client, None))
        arm.set_primary()
        return arm

    def _resolve_inference_factory(self, run_cfg: RunConfig) -> InferenceFactory | None:
        """The user's ``inference_factory``, else the one the plugin serving the arm's backend registered."""
        from evsys_sdk.plugins.registry import get_default_inference_factory

        return self.inference_factory or get_default_inference_factory(run_cfg)

    def _client(self, run_result: RunResult, run_cfg: RunConfig) -> InferenceClient | None:
        factory = self._resolve_inference_factory(run_cfg)
        if factory is None:
            log.warning(
                "no inference factory serves backend '%s': benchmarks of arm '%s' are skipped",
                run_cfg.backend.kind,
                run_cfg.name,
            )
            return None
        return factory(run_result, run_cfg)

    def _resolve_run_dir(self, arm: ArmResult) -> Path | None:
        """The folder the arm's run wrote into (its metrics.jsonl, checkpoints)."""
        artifacts = arm.run_result.artifacts if arm.run_result else {}
        if "run_dir" in artifacts:
            return Path(artifacts["run_dir"])
        return Path(self.config.output_dir).expanduser() / safe_run_name(arm.name)

    @staticmethod
    def _final_checkpoint(arm: ArmResult) -> str | None:
        """The trained model's inference checkpoint URI, from the arm's artifacts."""
        return (arm.run_result.artifacts if arm.run_result else {}).get("final_checkpoint")

    @staticmethod
    def _final_state_checkpoint(arm: ArmResult) -> str | None:
        """The full training state (weights + optimizer) a continual chain's next stage loads its weights
        from: ``state-final``, else any ``state-*``."""
        artifacts = arm.run_result.artifacts if arm.run_result else {}
        state = artifacts.get("state-final") or next((v for k, v in artifacts.items() if k.startswith("state-")), None)
        if state is None:
            log.warning(
                "stage '%s' reported no state-final artifact: the next stage starts from the base model", arm.name
            )
        return state

    # conclusions

    def _pick_best(self, arms: list[ArmResult], metric: str) -> ArmResult | None:
        """The best arm by ``metric``; with seeded repeats, the best arm of the group with the best mean
        (``metadata.expect`` may say lower is better)."""
        return best_of(arms, metric, self._expect)[0]

    def _build_conclusion(self, arms: list[ArmResult], best: ArmResult | None, metric: str | None) -> str:
        """The seeds' sentences, then how sure the best is, continual findings and ``metadata.expect``."""
        return conclude(
            arms,
            best,
            metric,
            best_group=best.group_name if best is not None else None,
            expect=self._expect,
            continual=self.config.continual is not None,
        )


def _unimportable_problem(cls: type) -> str | None:
    """Why a worker could not import ``cls`` by its path (pickle sends classes by reference), or None."""
    where = f"the Experiment subclass '{cls.__qualname__}'"
    if "<locals>" in cls.__qualname__:
        return f"{where} is defined inside a function, so a worker process cannot import it"
    main = sys.modules.get("__main__")
    if cls.__module__ == "__main__" and getattr(main, "__file__", None) is None:
        return f"{where} is defined in an interactive session, so a worker process cannot import it"
    return None


def _store_opener(store: Any) -> Callable[[], Any] | None:
    """How a worker opens the tracking store for reads (datasets and benchmarks by id), or None.

    A store offers ``worker_opener()``; the LocalStore is reopened by path (SQLite in WAL mode is safe
    across processes). Workers never write to it: the driver records every run.
    """
    if store is None:
        return None
    opener = getattr(store, "worker_opener", None)
    if callable(opener):
        result: Callable[[], Any] | None = opener()
        return result
    from evsys_sdk.tracking.store import LocalStore

    if isinstance(store, LocalStore):
        from functools import partial

        return partial(LocalStore, store.path)
    return None
