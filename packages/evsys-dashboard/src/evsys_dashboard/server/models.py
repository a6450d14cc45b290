"""Request bodies of the SDK routes: every payload is validated before it reaches the database."""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import BaseModel, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, on Python < 3.12

RecordId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Uid = Annotated[str, Field(min_length=1, max_length=200)]
Step = Annotated[int, Field(ge=-(2**62), le=2**62)]
Seed = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
Name = Annotated[str, Field(min_length=1, max_length=1000)]
Text = Annotated[str, Field(max_length=1_000_000)]
Status = Literal["pending", "running", "completed", "failed", "cancelled"]
Split = Annotated[str, Field(min_length=1, max_length=64)]
Metrics = dict[Annotated[str, Field(min_length=1, max_length=500)], float]

MAX_BATCH = 20_000


class _Open(BaseModel):
    """Known fields are typed; unknown ones are kept (stored in the record's ``extra``)."""

    model_config = ConfigDict(extra="allow")


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ExperimentCreate(_Open):
    id: RecordId | None = None
    experiment_name: Name
    project_id: str | None = None
    hypothesis: Text | None = None
    hypothesis_reasoning: Text | None = None
    plan: Text | None = None
    tags: list[Name] | None = None
    project_goal_id: str | None = None
    config: dict[str, Any] | None = None
    declaration_path: str | None = None
    is_valid: bool | None = None
    status: Status | None = None


class ExperimentUpdate(_Open):
    status: Status | None = None
    conclusion: Text | None = None
    best_score: float | None = None
    hypothesis: Text | None = None
    tags: list[Name] | None = None
    error_message: Text | None = None


class GroupCreate(_Closed):
    id: RecordId | None = None
    name: Name


class RunCreate(_Open):
    id: RecordId | None = None
    experiment_id: RecordId
    group_id: RecordId | None = None
    dataset_id: str | None = None
    seed: Seed | None = None
    recipe_kind: str | None = None
    run_config: dict[str, Any] | None = None
    status: Status = "pending"
    name: Name | None = None
    wandb_run_url: str | None = None
    tensorboard_path: str | None = None
    tensorboard_archive_url: str | None = None


class RunUpdate(_Open):
    status: Status | None = None
    error_message: Text | None = None
    metrics: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    group_id: RecordId | None = None
    seed: Seed | None = None


@with_config(ConfigDict(extra="forbid"))
class StepRow(TypedDict):
    """A row of a batch: a TypedDict, validated into a plain dict (a third faster than a model per row on
    the SDK's hottest route)."""

    step: Step
    split: NotRequired[Split]  # "train" when absent
    metrics: Metrics
    uid: NotRequired[Uid | None]
    ts: NotRequired[float | None]  # when the client logged it (the server's clock when absent)


class StepMetrics(_Closed):
    """One row (``step``, ``split``, ``metrics``) as upstream sends it, or a batch ``{"rows": [...]}``."""

    step: Step | None = None
    split: Split = "train"
    metrics: Metrics | None = None
    uid: Uid | None = None
    rows: Annotated[list[StepRow], Field(max_length=MAX_BATCH)] | None = None

    @model_validator(mode="after")
    def _one_or_batch(self) -> StepMetrics:
        single = self.step is not None or self.metrics is not None
        if single == (self.rows is not None):
            raise ValueError("send either step + metrics, or rows")
        if single and (self.step is None or self.metrics is None):
            raise ValueError("a single row needs both step and metrics")
        return self

    def as_tuples(self) -> list[tuple[int, str, dict[str, float], str | None, float | None]]:
        if self.rows is None:
            assert self.step is not None and self.metrics is not None
            return [(self.step, self.split, self.metrics, self.uid, None)]
        return [(r["step"], r.get("split", "train"), r["metrics"], r.get("uid"), r.get("ts")) for r in self.rows]


class EvalCreate(_Open):
    id: RecordId | None = None
    metrics: Metrics
    name: Name | None = None
    benchmark_id: str | None = None
    checkpoint_id: str | None = None
    model_ref: str | None = None
    step: Step | None = None
    breakdowns: dict[str, Any] | None = None
    tags: list[Name] | None = None
    sdk_version: str | None = None


class CheckpointCreate(_Open):
    id: RecordId | None = None
    uri: Annotated[str, Field(min_length=1, max_length=4000)]
    label: str | None = None
    step: Step | None = None
    base_model: str | None = None
    is_final: bool = False


class Predictions(_Closed):
    predictions: Annotated[list[dict[str, Any]], Field(max_length=MAX_BATCH)]
    uids: list[Uid | None] | None = None

    @model_validator(mode="after")
    def _same_length(self) -> Predictions:
        if self.uids is not None and len(self.uids) != len(self.predictions):
            raise ValueError("uids must have one entry per prediction")
        return self


class DataCreate(_Closed):
    name: Name
    format: str | None = None
    version: Annotated[int, Field(ge=1, le=2**31)] | None = None
    source_kind: str | None = None
    metadata: dict[str, Any] | None = None
    transform: Any = None


class DataRows(_Closed):
    rows: Annotated[list[dict[str, Any]], Field(max_length=MAX_BATCH)]
