"""What an experiment produces: per-benchmark evals, per-arm results, the experiment's result."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from evsys_sdk.base.stats import Summary, summarize
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.spec.protocols import RunResult


@dataclass
class EvalResult:
    """One benchmark scored against one arm: post-training (``step`` None) or in-loop at ``step``."""

    name: str
    benchmark_id: str | None
    metrics: dict[str, float]
    breakdowns: dict[str, Any] = field(default_factory=dict)
    eval_seconds: float = 0.0
    step: int | None = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ArmResult:
    """One arm of the experiment (one expanded RunConfig)."""

    name: str
    run_config: RunConfig
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    eval_metrics: dict[str, float] = field(default_factory=dict)
    eval_breakdowns: dict[str, Any] = field(default_factory=dict)
    evals: list[EvalResult] = field(default_factory=list)
    run_id: str | None = None
    error: str | None = None
    train_seconds: float | None = None
    eval_seconds: float | None = None
    run_result: RunResult | None = None
    group_id: str | None = None
    group_name: str | None = None
    stage: int | None = None
    resumed: bool = False

    def eval(self, name: str, *, step: int | None = None) -> EvalResult | None:
        """The post-training eval of ``name`` (else its last in-loop one); or the in-loop one at ``step``."""
        rows = [e for e in self.evals if e.name == name]
        if step is not None:
            return next((e for e in rows if e.step == step), None)
        post = [e for e in rows if e.step is None]
        if post:
            return post[0]
        live = [e for e in rows if e.step is not None]
        return max(live, key=lambda e: e.step or 0) if live else None

    def score(self, metric: str) -> float | None:
        """``bench.metric`` from that benchmark's eval, else ``metric`` from the primary eval, else from
        the training metrics. Metric names containing dots stay reachable in bare form."""
        for i, ch in enumerate(metric):
            if ch == ".":
                found = self.eval(metric[:i])
                if found is not None and metric[i + 1 :] in found.metrics:
                    return found.metrics[metric[i + 1 :]]
        if metric in self.eval_metrics:
            return self.eval_metrics[metric]
        return self.metrics.get(metric)

    def set_primary(self) -> None:
        """Mirror the primary eval (first post-training eval tagged test, else the first) into the flat fields."""
        post = [e for e in self.evals if e.step is None]
        primary = next((e for e in post if "test" in e.tags), post[0] if post else None)
        if primary is not None:
            self.eval_metrics, self.eval_breakdowns = dict(primary.metrics), dict(primary.breakdowns)
            self.eval_seconds = primary.eval_seconds

    def to_json(self) -> dict[str, Any]:
        data = {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("run_config", "run_result", "evals")
        }
        data["run_config"] = self.run_config.model_dump(mode="json")
        data["evals"] = [dataclasses.asdict(e) for e in self.evals]
        if self.run_result is not None:
            data["run_result"] = dataclasses.asdict(self.run_result) | {"extras": {}}
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArmResult:
        fields = dict(data)
        fields["run_config"] = RunConfig.model_validate(fields["run_config"])
        fields["evals"] = [EvalResult(**e) for e in fields.get("evals", [])]
        if fields.get("run_result") is not None:
            fields["run_result"] = RunResult(**fields["run_result"])
        return cls(**fields)

    def summary_metrics(self) -> dict[str, float]:
        """Training metrics plus every post-training eval metric as ``<benchmark>/<metric>``."""
        out = dict(self.metrics)
        for e in self.evals:
            if e.step is None:
                out.update({f"{e.name}/{k}": v for k, v in e.metrics.items()})
        return out


@dataclass
class ExperimentResult:
    name: str
    status: str
    arms: list[ArmResult]
    best_arm: ArmResult | None
    best_score: float | None
    conclusion: str
    experiment_id: str | None = None
    hypothesis: str | None = None
    success_metric: str | None = None
    baselines: list[EvalResult] = field(default_factory=list)
    best_group: str | None = None  # with seeded repeats: the group with the best mean (best_score is that mean)

    def group_stats(self, metric: str | None = None) -> dict[str, Summary]:
        """Mean, std and 95% CI of ``metric`` (default: the success metric) over each seeded group."""
        metric = metric or self.success_metric
        if metric is None:
            return {}
        groups: dict[str, list[float]] = {}
        for arm in self.arms:
            value = arm.score(metric) if arm.status == "completed" else None
            if arm.group_name is not None and value is not None:
                groups.setdefault(arm.group_name, []).append(value)
        return {name: summarize(values) for name, values in groups.items()}

    def stage_matrix(self, metric: str | None = None) -> dict[str, dict[str, float]]:
        """Continual experiments: ``{stage: {benchmark: score}}`` (mean over seeds) so forgetting shows.

        ``metric`` is a benchmark metric name (default: the success metric's metric part, else mean_reward).
        """
        return {stage: {b: s.mean for b, s in row.items()} for stage, row in self.stage_cells(metric).items()}

    def stage_cells(self, metric: str | None = None) -> dict[str, dict[str, Summary]]:
        """The stage x benchmark matrix with each cell summarized over the chains (n, mean, 95% CI)."""
        key = metric or (self.success_metric.rsplit(".", 1)[-1] if self.success_metric else "mean_reward")
        cells: dict[str, dict[str, list[float]]] = {}
        for arm in self.arms:
            if arm.stage is None or arm.status != "completed":
                continue
            label = arm.group_name or arm.name
            for e in arm.evals:
                if e.step is None and key in e.metrics:
                    cells.setdefault(label, {}).setdefault(e.name, []).append(e.metrics[key])
        return {stage: {b: summarize(v) for b, v in row.items()} for stage, row in cells.items()}

    def to_json(self) -> dict[str, Any]:
        """The whole record: the experiment, its arms with their evals, group statistics, baselines."""
        stats = self.group_stats()
        return {
            "experiment": {
                "id": self.experiment_id,
                "name": self.name,
                "status": self.status,
                "hypothesis": self.hypothesis,
                "success_metric": self.success_metric,
                "best_arm": self.best_arm.name if self.best_arm is not None else None,
                "best_group": self.best_group,
                "best_score": self.best_score,
                "conclusion": self.conclusion,
            },
            "arms": [
                {
                    "name": a.name,
                    "run_id": a.run_id,
                    "status": a.status,
                    "seed": a.run_config.seed,
                    "group": a.group_name,
                    "stage": a.stage,
                    "metrics": a.summary_metrics(),
                    "error": a.error,
                    "evals": [dataclasses.asdict(e) for e in a.evals],
                }
                for a in self.arms
            ],
            "groups": {
                name: {
                    **s.to_json(),
                    "metric": self.success_metric,
                    "arms": [a.name for a in self.arms if a.group_name == name],
                }
                for name, s in stats.items()
            },
            "baselines": [{"model": baseline_model(e), **dataclasses.asdict(e)} for e in self.baselines],
        }

    def summary(self) -> list[dict[str, Any]]:
        """The JSON summary of ``evsys run``: one object per arm."""
        return [
            {"run_id": a.name, "status": a.status, "metrics": a.summary_metrics(), "error": a.error} for a in self.arms
        ]


def baseline_model(e: EvalResult) -> str:
    """The model a baseline eval scored (its ``model:<label>`` tag)."""
    return next((t[6:] for t in e.tags if t.startswith("model:")), "?")
