"""Experiment's seed-000 members are the code path: a subclass overriding one changes what happens,
in the driver and in worker processes alike (which rebuild the subclass from its import path)."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.spec.config import BenchmarkSpec, ExperimentConfig, RunConfig
from evsys_sdk.spec.protocols import InferenceFactory, RunResult
from evsys_sdk.spec.results import ArmResult, EvalResult
from evsys_sdk.testing import executors as kit


@pytest.fixture
def host(plugin_host: PluginHost) -> PluginHost:
    return kit.add_executor_test_plugin(plugin_host)


def experiment(tmp_path: Path, executor: str = "sequential", **fields: Any) -> ExperimentConfig:
    runs = [kit.mock_run("a", num_epochs=1), kit.mock_run("b", num_epochs=3), kit.mock_run("c", num_epochs=2)]
    block = kit.executor_config("process", max_workers=2) if executor == "process" else {"kind": executor}
    return load_yaml(kit.executor_experiment(tmp_path / "out", block, runs=runs, **fields))


class WorstFirst(Experiment):
    """Ranks arms by the lowest score and writes its own conclusion."""

    def _pick_best(self, arms: list[ArmResult], metric: str) -> ArmResult | None:
        scored = [a for a in arms if a.score(metric) is not None]
        return min(scored, key=lambda a: a.score(metric) or 0.0) if scored else None

    def _build_conclusion(self, arms: list[ArmResult], best: ArmResult | None, metric: str | None) -> str:
        return f"worst: {best.name if best else None}"


class OnlyFirst(Experiment):
    """Keeps the first primary, two seeds each, and skips the configured benchmarks."""

    def _iter_runs(self) -> list[RunConfig]:
        return super()._iter_runs()[:1]

    def _replicates_for(self, primary: RunConfig) -> list[tuple[RunConfig, str | None]]:
        return [(primary.model_copy(update={"name": f"{primary.name}-{i}", "seed": i}), primary.name) for i in (1, 2)]

    def _resolve_benchmarks(self, raw: Any) -> list[tuple[Any, BenchmarkSpec]]:
        return []


class InWorker(Experiment):
    """Marks each arm with the process that trained and scored it, and replaces training and eval."""

    def _train_arm(self, arm: ArmResult, run_cfg: RunConfig) -> ArmResult:
        super()._train_arm(arm, run_cfg)
        arm.metrics["trained_in_pid"] = float(os.getpid())
        return arm

    def _eval_arm(
        self, arm: ArmResult, run_cfg: RunConfig, benchmarks: list[tuple[Any, BenchmarkSpec]], meta: dict[str, Any]
    ) -> ArmResult:
        arm.evals.append(EvalResult(name="custom", benchmark_id=None, metrics={"steps": arm.metrics["total_steps"]}))
        arm.set_primary()
        return arm

    def _resolve_inference_factory(self, run_cfg: RunConfig) -> InferenceFactory | None:
        raise AssertionError("_eval_arm is overridden: no client is built")


class OwnTrainer(Experiment):
    """Trains with a default of its own: the subclass's ``_default_train_fn`` is what ``train_fn`` is."""

    def _default_train_fn(self, config: ExperimentConfig) -> list[RunResult]:
        assert config.run is not None and config.runs is None
        return [RunResult(run_id=config.run.name, status="completed", metrics={"own": float(os.getpid())})]


def test_train_fn_defaults_to_the_default_train_fn(tmp_path: Path, host: PluginHost) -> None:
    exp = Experiment(experiment(tmp_path))
    assert exp.train_fn == exp._default_train_fn and exp.train_fn.__name__ == "_default_train_fn"
    first = exp._iter_runs()[0]
    [result] = exp.train_fn(exp._single_config(first))  # run_experiment on the one-arm config
    assert result.status == "completed" and result.metrics["total_steps"] == 3.0
    given = Experiment(experiment(tmp_path), train_fn=kit_train)
    assert given.train_fn is kit_train


def kit_train(cfg: ExperimentConfig) -> list[RunResult]:
    return []


def test_overridden_ranking_and_conclusion(tmp_path: Path, host: PluginHost) -> None:
    cfg = experiment(tmp_path, metadata={"success_metric": "total_steps"})
    assert Experiment(cfg).run().best_arm.name == "b"  # type: ignore[union-attr]
    result = WorstFirst(cfg).run()
    assert result.best_arm is not None and result.best_arm.name == "a" and result.best_score == 3.0
    assert result.conclusion == "worst: a"


def test_overridden_runs_replicates_and_benchmarks(tmp_path: Path, host: PluginHost) -> None:
    bench = kit.write_qa_benchmark(tmp_path / "bench")
    result = OnlyFirst(experiment(tmp_path, metadata={"benchmark": {"name": "qa", "path": str(bench)}})).run()
    assert [(a.name, a.run_config.seed, a.group_name, a.evals) for a in result.arms] == [
        ("a-1", 1, "a", []),
        ("a-2", 2, "a", []),
    ]


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_arm_steps_overridden_wherever_the_arm_runs(tmp_path: Path, host: PluginHost, executor: str) -> None:
    bench = kit.write_qa_benchmark(tmp_path / "bench")
    cfg = experiment(tmp_path, executor, metadata={"benchmark": {"name": "qa", "path": str(bench)}})
    result = InWorker(cfg).run()
    assert [a.status for a in result.arms] == ["completed"] * 3, [a.error for a in result.arms]
    assert [a.eval_metrics for a in result.arms] == [{"steps": 3.0}, {"steps": 9.0}, {"steps": 6.0}]
    pids = {a.metrics["trained_in_pid"] for a in result.arms}
    assert (pids == {float(os.getpid())}) == (executor == "sequential")
    own = OwnTrainer(cfg).run()
    assert all(set(a.metrics) == {"own"} for a in own.arms)
    assert all((a.metrics["own"] == os.getpid()) == (executor == "sequential") for a in own.arms)


def test_a_subclass_workers_cannot_import_is_refused_before_any_arm(tmp_path: Path, host: PluginHost) -> None:
    cfg = experiment(tmp_path, "process")

    class Local(Experiment):
        pass

    with pytest.raises(ConfigError) as err:
        Local(cfg).run()
    assert str(err.value) == (
        "executor 'process' runs arms in other processes: the Experiment subclass "
        "'test_a_subclass_workers_cannot_import_is_refused_before_any_arm.<locals>.Local' is defined inside a "
        "function, so a worker process cannot import it (use module-level functions and classes, or executor "
        "kind 'sequential')"
    )
    assert not (tmp_path / "out").exists()
    assert [a.status for a in Local(experiment(tmp_path)).run().arms] == ["completed"] * 3  # in-process is fine


class Locked(Experiment):
    def __init__(self, config: ExperimentConfig, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.lock = threading.Lock()


def test_a_subclass_that_does_not_pickle_is_refused_before_any_arm(tmp_path: Path, host: PluginHost) -> None:
    with pytest.raises(ConfigError, match=r"the Experiment subclass 'Locked' cannot be sent to a worker process "):
        Locked(experiment(tmp_path, "process")).run()
    assert not (tmp_path / "out").exists()
