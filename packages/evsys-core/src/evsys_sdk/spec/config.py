"""The YAML schema: strict pydantic models for an experiment and its runs.

Every pluggable block is a ``{kind, params}`` envelope. ``kind`` is a free string checked against the
registries at deep validation (so third-party kinds work from YAML); ``params`` is checked against the
registered class's ``Config``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from evsys_sdk.spec.search import SearchConfig
from evsys_sdk.spec.sweep import expand_matrix_problems, expand_runs


class StrictModel(BaseModel):
    """Base of every config model: an unknown key is an error, never ignored, and a float is finite (a
    config reaching ``inf`` or ``nan`` is a typo or a search gone astray, never a setting)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# Log stores that write files and get ``log_dir`` filled in per run when the config leaves it out.
FILE_LOG_STORES = ("jsonl", "tensorboard")
# Words that make a metric name read as lower-is-better (train/final_loss, val.error_rate, eval/perplexity):
# such a success metric needs its direction stated, or the experiment would call its worst arm the best.
LOWER_IS_BETTER = frozenset({"loss", "error", "err", "perplexity", "ppl", "nll", "regret", "mse", "mae", "rmse", "wer"})


class _KindSpec(StrictModel):
    kind: str = Field(description="the registered name of the extension (`evsys plugins` lists them)")
    params: dict[str, Any] = Field(default_factory=dict, description="the extension's params (its Config)")


class AlgorithmConfig(_KindSpec):
    """The training algorithm (or family: sft, sdft, rl) and its params."""


class VerifierSpec(_KindSpec):
    """A registered verifier and its params."""


class TransformSpec(_KindSpec):
    """A registered row transform and its params."""


class MetricSpec(_KindSpec):
    """A registered metric and its params."""


class InferenceSpec(_KindSpec):
    """A registered inference client and its params."""


class CallbackSpec(_KindSpec):
    """An experiment callback (logger) and its params."""


class ExecutorSpec(_KindSpec):
    """Where the arms run: ``sequential`` (default), ``process`` (a local pool), ``ray`` (evsys-ray)."""

    kind: str = Field(default="sequential", description="the registered executor (`evsys list --kind executors`)")


class DataStoreSpec(_KindSpec):
    """Where data paths and stored datasets are read from (``local``: files under ``params.root``)."""

    kind: str = Field(default="local", description="the registered data store (`evsys list --kind data_stores`)")


class LogStoreSpec(_KindSpec):
    """Where an algorithm's own per-step logs go inside its run folder (``<run_dir>/logs``)."""

    kind: str = Field(default="jsonl", description="the registered log store (`evsys list --kind log_stores`)")

    def params_for(self, run_dir: str) -> dict[str, Any]:
        """Params with ``log_dir`` filled in (``<run_dir>/logs``, per child kind under multiplex)."""
        params = dict(self.params)
        if self.kind in FILE_LOG_STORES:
            params.setdefault("log_dir", f"{run_dir}/logs")
        elif self.kind == "multiplex":
            params["children"] = [
                {**c, "params": {"log_dir": f"{run_dir}/logs/{c['kind']}", **(c.get("params") or {})}}
                if isinstance(c, dict) and c.get("kind") in FILE_LOG_STORES
                else c
                for c in params.get("children") or []
            ]
        return params


class BackendConfig(_KindSpec):
    """What trains the model: ``mock`` (core), ``local`` (evsys-local), ``tinker`` (evsys-tinker)."""

    kind: str = Field(default="tinker", description="the registered backend; an algorithm family routes by it")


SourceKind = Literal["jsonl", "json", "in_memory", "hf_dataset"]


class DataConfig(StrictModel):
    """Where a run's rows come from and how they are transformed."""

    source_kind: SourceKind = Field(
        default="jsonl", description="how the rows are read: a file, inline rows, a hub dataset"
    )
    dataset_id: str | None = Field(default=None, description="a dataset stored in the tracking store, by id")
    dataset_name: str | None = Field(
        default=None, description="a dataset stored in the tracking store, by name (newest)"
    )
    path: str | None = Field(default=None, description="the JSONL/JSON file, relative to the data store's root")
    rows: list[dict[str, Any]] | None = Field(default=None, description="the rows themselves (source_kind: in_memory)")
    hf_dataset: str | None = Field(
        default=None, description="a Hugging Face dataset name or local folder (evsys-core[hf])"
    )
    hf_split: str = Field(default="train", description="the split of hf_dataset")
    transforms: list[TransformSpec] = Field(default_factory=list, description="row transforms applied in order")

    @model_validator(mode="after")
    def _source_is_complete(self) -> DataConfig:
        if self.dataset_id or self.dataset_name:
            return self
        if self.source_kind in ("jsonl", "json") and not self.path:
            raise ValueError(f"data.path is required for source_kind={self.source_kind}")
        if self.source_kind == "hf_dataset" and not self.hf_dataset:
            raise ValueError("data.hf_dataset is required for source_kind=hf_dataset")
        return self


class ModelConfig(StrictModel):
    """The model a run starts from."""

    name: str = Field(description="a model name or local folder the backend loads (mock accepts any)")
    load_checkpoint_path: str | None = Field(
        default=None, description="resume from this checkpoint: weights and optimizer state"
    )
    init_from_checkpoint: str | None = Field(
        default=None, description="start from these weights only (continual stages set it to the previous stage's)"
    )
    renderer_name: str | None = Field(default=None, description="the chat renderer, where a backend has several")


class EvalConfig(StrictModel):
    """Post-training eval over the run's rows (or ``eval_data``) with registry metrics."""

    enabled: bool = Field(default=True, description="score the run after training")
    metrics: list[MetricSpec] = Field(default_factory=list, description="registered metrics to compute")
    inference: InferenceSpec | None = Field(
        default=None, description="the client that answers (default: the backend's, serving the trained arm)"
    )
    eval_data: DataConfig | None = Field(default=None, description="the rows to score (default: the run's own)")
    n_samples: int | None = Field(default=None, ge=0, description="score only the first N rows (default: all)")


class RunConfig(StrictModel):
    """One training run (one arm of an experiment)."""

    name: str = Field(min_length=1, description="the arm's name: its run folder and run id")
    data: DataConfig | None = Field(default=None, description="the training rows")
    model: ModelConfig = Field(description="the model it starts from")
    algorithm: AlgorithmConfig = Field(
        description="how it trains: a family (sft, sdft, rl, dpo, distill) or an algorithm"
    )
    backend: BackendConfig = Field(default_factory=BackendConfig, description="what trains it")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="scoring after training, on the run's rows")
    seed: int = Field(default=42, description="the run's seed (replicates get base_seed + i)")
    tags: list[str] = Field(default_factory=list, description="labels recorded with the run")
    max_seconds: float | None = Field(
        default=None,
        gt=0,
        description="wall-time budget of this arm in seconds: past it the arm stops, status failed, with its "
        "partial metrics (checked every training step; the process and ray executors also kill it)",
    )


class MatrixSpec(StrictModel):
    """A cartesian sweep over dotted paths of ``base_run``; expanded into ``runs`` at load time."""

    base_run: RunConfig = Field(description="the run every arm starts from")
    axes: dict[str, list[Any]] = Field(
        default_factory=dict, description="dotted path into the run -> its values; the arms are the product"
    )
    name_template: str | None = Field(default=None, description="arm names (default: the base name and each value)")


@dataclass
class Sweep:
    """A cartesian sweep of ``base_run`` over dotted-path axes."""

    base_run: RunConfig
    axes: dict[str, list[Any]] = field(default_factory=dict)
    name_template: str | None = None

    def __post_init__(self) -> None:
        for axis, values in self.axes.items():
            if not isinstance(values, list | tuple) or not values:
                raise ValueError(f"Sweep axis '{axis}' must be a non-empty list of values")

    def __len__(self) -> int:
        return math.prod(len(v) for v in self.axes.values())

    def expand(self) -> list[RunConfig]:
        return expand_runs(self.base_run, self.axes, self.name_template)

    def to_matrix(self) -> MatrixSpec:
        return MatrixSpec(base_run=self.base_run, axes=dict(self.axes), name_template=self.name_template)

    @classmethod
    def from_matrix(cls, matrix: MatrixSpec) -> Sweep:
        return cls(base_run=matrix.base_run, axes=dict(matrix.axes), name_template=matrix.name_template)


class ContinualConfig(StrictModel):
    """Train the base run once per dataset, in order, each stage starting from the last one's weights."""

    datasets: list[DataConfig] = Field(min_length=1, description="each stage's training rows, in order")
    name_template: str | None = Field(default=None, description='stage names (default: "{base}_stage{i}")')

    def stage_name(self, base: str, i: int) -> str:
        return (self.name_template or "{base}_stage{i}").format(base=base, i=i)


class BenchmarkSpec(StrictModel):
    """One entry of ``metadata.benchmark``: a test set scored after training, or (with ``run_every``) a
    validation set scored in the loop every N steps. ``models`` are baselines (any inference kind,
    e.g. ``claude``) scored once per experiment beside the trained arms."""

    name: str | None = Field(default=None, description="its name in results (`NAME.METRIC`), or a stored benchmark's")
    id: str | None = Field(default=None, description="a benchmark stored in the tracking store, by id")
    path: str | None = Field(default=None, description="a folder with tasks.jsonl (Harbor tasks) and metadata.yaml")
    tags: list[str] = Field(default_factory=list, description="labels recorded with its evals")
    run_every: int | None = Field(
        default=None, ge=1, description="score the live model every N training steps instead of after training"
    )
    max_tokens: int = Field(default=512, ge=1, description="tokens generated per answer")
    temperature: float = Field(default=0.0, ge=0, description="sampling temperature (0 = greedy)")
    stop: list[str] | None = Field(default=None, description="stop sequences")
    breakdown_keys: list[str] | None = Field(default=None, description="task metadata keys to break the scores down by")
    limit: int | None = Field(default=None, ge=0, description="score only the first N tasks")
    metrics: list[str] | None = Field(default=None, description="metrics to report (default: mean_reward, pass_rate)")
    num_samples: int = Field(default=1, ge=1, description="answers sampled per task (for pass@k)")
    max_concurrency: int = Field(default=16, ge=1, description="requests in flight at once")
    models: list[InferenceSpec] = Field(
        default_factory=list, description="baselines: inference kinds scored once per experiment beside the arms"
    )

    @field_validator("models", mode="before")
    @classmethod
    def _kind_shorthand(cls, value: Any) -> Any:
        """``models: [claude]`` is short for ``models: [{kind: claude}]``."""
        return [{"kind": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @model_validator(mode="after")
    def _has_source(self) -> BenchmarkSpec:
        if not (self.path or self.id or self.name):
            raise ValueError("a benchmark needs `path`, `id` or `name`")
        return self

    def label(self, index: int) -> str:
        """The display name: ``name``, else the id, else the path, else ``benchmark_<i>``."""
        return self.name or self.id or self.path or f"benchmark_{index}"


def safe_run_name(name: str) -> str:
    """The run's directory name and run id: "/" and " " become "_"."""
    return name.replace("/", "_").replace(" ", "_")


class ExperimentConfig(StrictModel):
    """The YAML root. A ``matrix`` is expanded into ``runs`` during validation."""

    version: int = Field(default=1, description="the config format's version")
    name: str = Field(min_length=1, description="the experiment's name in the tracking store (`evsys runs show NAME`)")
    description: str = Field(default="", description="the question the experiment answers")
    output_dir: str = Field(default="./outputs", description="run folders go here, relative to the project root")
    data_store: DataStoreSpec = Field(default_factory=DataStoreSpec, description="where data paths are read from")
    log_store: LogStoreSpec = Field(default_factory=LogStoreSpec, description="each run's own logs")
    callbacks: list[CallbackSpec] = Field(default_factory=list, description="experiment event loggers")
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec, description="where the arms run")
    run: RunConfig | None = Field(default=None, description="one arm (or: runs, matrix)")
    runs: list[RunConfig] | None = Field(default=None, description="several arms, each spelt out")
    matrix: MatrixSpec | None = Field(default=None, description="arms as the product of axes over a base run")
    continual: ContinualConfig | None = Field(
        default=None, description="train each arm on several datasets in order, each stage from the last"
    )
    # The bound is checked with the structural checks (one located message); the schema states it too.
    n_repeats: int = Field(
        default=1,
        description="seeded replicates per arm: a replicate group, compared by its mean",
        json_schema_extra={"minimum": 1},
    )
    base_seed: int | None = Field(default=None, description="the first replicate's seed (default: the run's seed)")
    parent_experiment_id: str | None = Field(default=None, description="an experiment this one follows up")
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="hypothesis, tags, success_metric, expect and benchmark (see BenchmarkSpec and Expectation)",
    )
    search: SearchConfig | None = Field(default=None, description="what `evsys evolve` searches (not `evsys run`)")
    # Where this config was read from (a spec.source.Source), so later errors can name file:line.
    _source: Any = PrivateAttr(default=None)
    # The folder its relative paths resolved against (evsys_sdk.spec.paths), None for a config given as a dict.
    _root: Any = PrivateAttr(default=None)
    # The matrix as written, once expanded into ``runs``: deep validation checks the base run's own values.
    _matrix: MatrixSpec | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ExperimentConfig:
        # load_yaml passes a list in the context to collect located problems instead of one raise.
        sink = info.context.get("problems") if isinstance(info.context, dict) else None
        problems = self._structural_problems()
        if not problems and self.matrix is not None:
            runs, problems = expand_matrix_problems(self.matrix)
            if not problems:
                self.runs, self.matrix, self._matrix = runs, None, self.matrix
        if not problems:
            problems = self._name_problems()
        if problems and sink is None:
            raise ValueError("; ".join(f"{'.'.join(map(str, p))}: {m}" if p else m for p, m in problems))
        if sink is not None:
            sink.extend(problems)
        return self

    def _structural_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        problems: list[tuple[tuple[str | int, ...], str]] = []
        found = sum(x is not None for x in (self.run, self.runs, self.matrix))
        if found != 1:
            problems.append(((), f"ExperimentConfig must have exactly one of: run, runs, matrix (found {found})."))
        if self.n_repeats < 1:
            problems.append((("n_repeats",), f"n_repeats must be >= 1 (got {self.n_repeats})."))
        if self.continual is not None and self.run is None:
            problems.append((("continual",), "continual requires a single `run` as the base (not runs/matrix)."))
        if self.continual is None:
            for path, run in self._runs_with_paths():
                if run.data is None:
                    problems.append(
                        ((*path, "data"), "Field required (a run needs `data` unless `continual` gives it)")
                    )
        return problems + self._direction_problems()

    def _direction_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """A success metric named like a loss with no stated direction: the best would be its highest value."""
        metric = self.metadata.get("success_metric")
        if not isinstance(metric, str) or not LOWER_IS_BETTER & set(re.split(r"[^a-z0-9]+", metric.lower())):
            return []
        expect = self.metadata.get("expect")
        if isinstance(expect, dict) and expect.get("metric") == metric:
            return []
        if self.search is not None and "direction" in self.search.model_fields_set:
            return []
        if self.search is not None:
            fix = "set `search.direction: minimize` (or `maximize` if higher is better)"
        else:
            fix = f"add `expect: {{metric: {metric}, better: lower}}` to metadata (or `better: higher`)"
        why = f"{metric!r} reads as lower-is-better, but the best is the highest value unless told"
        return [(("metadata", "success_metric"), f"{why}: {fix}")]

    def _runs_with_paths(self) -> list[tuple[tuple[str | int, ...], RunConfig]]:
        if self.run is not None:
            return [(("run",), self.run)]
        if self.runs is not None:
            return [(("runs", i), r) for i, r in enumerate(self.runs)]
        if self.matrix is not None:
            return [(("matrix", "base_run"), self.matrix.base_run)]
        return []

    def arm_names(self) -> list[str]:
        """Every arm name after matrix, continual and repeat expansion, in execution order."""
        names = []
        for run in self.all_runs():
            stages = (
                [self.continual.stage_name(run.name, i) for i in range(len(self.continual.datasets))]
                if self.continual
                else [run.name]
            )
            for stage in stages:
                if self.n_repeats == 1:
                    names.append(stage)
                else:
                    names.extend(f"{stage}__s{seed}" for seed in self.repeat_seeds(run))
        return names

    def repeat_seeds(self, run: RunConfig) -> list[int]:
        """Seeds of a run's replicates: from ``base_seed`` when set, else from the run's own seed."""
        start = self.base_seed if self.base_seed is not None else run.seed
        return [start + i for i in range(self.n_repeats)]

    def all_runs(self) -> list[RunConfig]:
        """The primaries: ``[run]`` or ``runs`` (a matrix is already expanded into ``runs``)."""
        return [self.run] if self.run is not None else list(self.runs or [])

    def _name_problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        seen: dict[str, str] = {}
        problems: list[tuple[tuple[str | int, ...], str]] = []
        for name in self.arm_names():
            safe = safe_run_name(name)
            if safe in seen:
                same = "" if seen[safe] == name else f" (as '{seen[safe]}'; '/' and ' ' both become '_')"
                problems.append(
                    (
                        ("runs",) if self.runs is not None else ("run",),
                        f"duplicate run name '{name}'{same}: each run needs its own output directory; rename one",
                    )
                )
            seen.setdefault(safe, name)
        return problems
