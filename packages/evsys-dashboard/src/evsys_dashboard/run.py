"""``ExperimentRun``: one run of one experiment as a context manager (BEHAVIOR 1.24)."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from evsys_dashboard.client import DashboardClient, _drop_none, log

if TYPE_CHECKING:
    from evsys_sdk.eval.benchmark import BenchmarkScore, BenchmarkTaskResult


class ExperimentRun:
    """Create (or join) an experiment and one run on enter; mark them completed or failed on exit.

    Joining an existing experiment (``experiment_id=...``, e.g. one thread of a campaign) never marks the
    shared experiment completed or failed on exit: only its own run. A conclusion or best score set on a
    joined run is still written to the experiment.
    """

    def __init__(
        self,
        client: DashboardClient,
        *,
        experiment_name: str | None = None,
        hypothesis: str | None = None,
        hypothesis_reasoning: str | None = None,
        plan: str | None = None,
        tags: list[str] | None = None,
        project_goal_id: str | None = None,
        group_id: str | None = None,
        dataset_id: str | None = None,
        seed: int | None = None,
        recipe_kind: str | None = None,
        run_config: dict[str, Any] | None = None,
        wandb_run_url: str | None = None,
        tensorboard_path: str | None = None,
        experiment_id: str | None = None,
    ):
        if experiment_id is None and not experiment_name:
            raise ValueError("ExperimentRun needs experiment_name (or experiment_id to join an experiment)")
        self.client = client
        self._experiment_kwargs = _drop_none(
            {
                "experiment_name": experiment_name,
                "hypothesis": hypothesis,
                "hypothesis_reasoning": hypothesis_reasoning,
                "plan": plan,
                "tags": tags,
                "project_goal_id": project_goal_id,
            }
        )
        self._run_kwargs = _drop_none(
            {
                "group_id": group_id,
                "dataset_id": dataset_id,
                "seed": seed,
                "recipe_kind": recipe_kind,
                "run_config": run_config,
                "wandb_run_url": wandb_run_url,
                "tensorboard_path": tensorboard_path,
            }
        )
        self._joined = experiment_id is not None
        self.experiment_id: str | None = experiment_id
        self.run_id: str | None = None
        self._best_score: float | None = None
        self._conclusion: str | None = None

    def __enter__(self) -> ExperimentRun:
        if self.experiment_id is None:
            self.experiment_id = self.client.create_experiment(**self._experiment_kwargs)["id"]
        self.run_id = self.client.create_run(experiment_id=self.experiment_id, status="running", **self._run_kwargs)[
            "id"
        ]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self.experiment_id is not None and self.run_id is not None
        if exc_type is None:
            run_patch: dict[str, Any] = {"status": "completed"}
            if self._best_score is not None:
                run_patch["summary"] = {"best_score": self._best_score}
            self.client.update_run(self.run_id, **run_patch)
            patch = _drop_none({"best_score": self._best_score, "conclusion": self._conclusion})
            if not self._joined:
                patch["status"] = "completed"
            if patch:
                self.client.update_experiment(self.experiment_id, **patch)
            return
        message = str(exc) if exc is not None else ""
        error = f"{exc_type.__name__}: {message}" if message else exc_type.__name__
        try:
            self.client.update_run(self.run_id, status="failed", error_message=error)
        except Exception:
            log.warning("marking run %s failed did not work", self.run_id, exc_info=True)
        if not self._joined:
            try:
                self.client.update_experiment(self.experiment_id, status="failed", error_message=error)
            except Exception:
                log.warning("marking experiment %s failed did not work", self.experiment_id, exc_info=True)

    # helpers

    def _rid(self) -> str:
        if self.run_id is None:
            raise RuntimeError("ExperimentRun is not entered (use it as `with ExperimentRun(...) as run:`)")
        return self.run_id

    def log_step(self, step: int, **metrics: Any) -> dict[str, Any]:
        split = metrics.pop("split", "train")
        return self.client.log_step_metric(self._rid(), step=step, split=split, **metrics)

    def log_eval(
        self,
        *,
        metrics: dict[str, float],
        benchmark_id: str | None = None,
        checkpoint_id: str | None = None,
        model_ref: str | None = None,
        step: int | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        return self.client.create_eval(
            self._rid(),
            metrics=metrics,
            benchmark_id=benchmark_id,
            checkpoint_id=checkpoint_id,
            model_ref=model_ref,
            step=step,
            **fields,
        )

    def add_checkpoint(self, *, uri: str, **fields: Any) -> dict[str, Any]:
        return self.client.add_checkpoint(self._rid(), uri=uri, **fields)

    def log_predictions(self, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        return self.client.log_predictions(self._rid(), predictions)

    def benchmark(
        self,
        name: str,
        *,
        benchmark_id: str | None = None,
        step: int | None = None,
        metrics: Sequence[str] | None = None,
        breakdown_keys: Sequence[str] = (),
        tags: list[str] | None = None,
    ) -> BenchmarkRecording:
        """A context that collects one benchmark's per-task results (``record``) and, when the block
        ends without an error, records them on this run as ``DashboardClient.record_benchmark`` does."""
        return BenchmarkRecording(
            self, name, benchmark_id=benchmark_id, step=step, metrics=metrics, breakdown_keys=breakdown_keys, tags=tags
        )

    def set_best_score(self, score: float) -> None:
        self._best_score = float(score)

    def set_conclusion(self, text: str) -> None:
        self._conclusion = text

    def update_run(self, **patch: Any) -> dict[str, Any]:
        return self.client.update_run(self._rid(), **patch)

    def update_experiment(self, **patch: Any) -> dict[str, Any]:
        if self.experiment_id is None:
            raise RuntimeError("ExperimentRun is not entered")
        return self.client.update_experiment(self.experiment_id, **patch)

    update_generation = update_run


class BenchmarkRecording:
    """``with run.benchmark("qa") as bench: bench.record(task_id, reward, ...)``: the tasks scored in the
    block become one eval on the run (the benchmark's metrics, default mean_reward and pass_rate, with
    standard errors and breakdowns) and one prediction per task. ``score`` and ``eval`` hold the outcome."""

    def __init__(
        self,
        run: ExperimentRun,
        name: str,
        *,
        benchmark_id: str | None,
        step: int | None,
        metrics: Sequence[str] | None,
        breakdown_keys: Sequence[str],
        tags: list[str] | None,
    ):
        self.run, self.name = run, name
        self.benchmark_id, self.step, self.tags = benchmark_id, step, tags
        self._metrics, self._breakdown_keys = metrics, breakdown_keys
        self._tasks: list[BenchmarkTaskResult] = []
        self.score: BenchmarkScore | None = None
        self.eval: dict[str, Any] | None = None

    def record(
        self,
        task_id: str,
        reward: float,
        *,
        model_output: str = "",
        expected: Any = None,
        instruction: str = "",
        **metadata: Any,
    ) -> None:
        """One task's result: its reward (1.0 = passed), what the model said and what was expected;
        ``metadata`` feeds the breakdowns."""
        from evsys_sdk.eval.benchmark import BenchmarkTaskResult

        value = float(reward)
        self._tasks.append(
            BenchmarkTaskResult(task_id, instruction, model_output, expected, value, dict(metadata), [value])
        )

    def __enter__(self) -> BenchmarkRecording:
        self.run._rid()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is not None:
            return  # a benchmark that broke off is not recorded as if it had finished
        from evsys_sdk.eval.benchmark import BenchmarkScore

        self.score = BenchmarkScore.from_tasks(self._tasks, metrics=self._metrics, breakdown_keys=self._breakdown_keys)
        self.eval = self.run.client.record_benchmark(
            self.run._rid(), self.score, name=self.name, benchmark_id=self.benchmark_id, step=self.step, tags=self.tags
        )
