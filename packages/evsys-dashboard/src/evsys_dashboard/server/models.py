"""Request bodies of the SDK routes: every payload is validated before it reaches the database.

Validation is strict (``"5"`` is not an integer, ``1`` is not a boolean) and checks that the store can
hold each value: text must be valid UTF-8 (pydantic-core refuses lone surrogates in ``str`` fields), and
every free-form JSON field (configs, extras, breakdowns, predictions, dataset rows...) must serialize to
at most ``MAX_FIELD_BYTES`` and nest no deeper than the serializer goes. A value that fails answers 422
naming its field, never a 500.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator, with_config
from typing_extensions import TypedDict  # pydantic needs this one, not typing's, on Python < 3.12

from evsys_sdk.tracking.store import json_text

MAX_FIELD_BYTES = 1 << 20  # one free-form field (a config, a prediction, a dataset row...) once serialized
MAX_TEXT = 1_000_000  # characters of a text field (hypothesis, conclusion, error message...)
MAX_BATCH = 20_000  # rows of one step-metric request
MAX_ITEMS = 2_000  # predictions or dataset rows of one request (the client sends at most this many)
MAX_INT = 2**53 - 1  # steps and seeds: integers a JSON number (a double) holds exactly


def _integral(value: Any) -> Any:
    """JSON has numbers, not integers: ``5.0`` is the integer 5 (JSON Schema agrees); ``5.5``, ``"5"`` and
    ``true`` stay refused by the strict ``int`` after this."""
    return int(value) if type(value) is float and value.is_integer() else value


def _storable(value: Any) -> Any:
    """A free-form JSON value the store can write: serializable, and at most MAX_FIELD_BYTES."""
    try:
        size = len(json_text(value))
    except Exception as exc:  # lone surrogates, nesting deeper than the serializer's limit
        raise ValueError(f"cannot be stored as JSON: {str(exc).removeprefix('Error serializing to JSON: ')}") from None
    if size > MAX_FIELD_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_FIELD_BYTES}")
    return value


Integral = BeforeValidator(_integral)  # after the bounds in Annotated[...], so the JSON schema keeps them
RecordId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Uid = Annotated[str, Field(min_length=1, max_length=200)]
Step = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT), Integral]
Seed = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT), Integral]
Name = Annotated[str, Field(min_length=1, max_length=1000)]
Ref = Annotated[str, Field(max_length=4000)]  # ids of other systems, paths, URLs, labels
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Json = Annotated[Any, AfterValidator(_storable)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable)]
Status = Literal["pending", "running", "completed", "failed", "cancelled"]
Split = Annotated[str, Field(min_length=1, max_length=64)]
Metrics = dict[Annotated[str, Field(min_length=1, max_length=500)], float]


class _Open(BaseModel):
    """Known fields are typed; unknown ones are kept (stored in the record's ``extra``), each storable."""

    model_config = ConfigDict(extra="allow", strict=True)
    __pydantic_extra__: dict[str, Json] = Field(init=False)


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ExperimentCreate(_Open):
    id: RecordId | None = None
    experiment_name: Name
    project_id: Ref | None = None
    hypothesis: Text | None = None
    hypothesis_reasoning: Text | None = None
    plan: Text | None = None
    tags: Annotated[list[Name], Field(max_length=1000)] | None = None
    project_goal_id: Ref | None = None
    config: JsonObject | None = None
    declaration_path: Ref | None = None
    is_valid: bool | None = None
    status: Status | None = None


class ExperimentUpdate(_Open):
    status: Status = Field(default=None, description="may be omitted, never null")
    conclusion: Text | None = None
    best_score: float | None = None
    hypothesis: Text | None = None
    tags: Annotated[list[Name], Field(max_length=1000)] | None = None
    error_message: Text | None = None


class GroupCreate(_Closed):
    id: RecordId | None = None
    name: Name


class RunCreate(_Open):
    id: RecordId | None = None
    experiment_id: RecordId
    group_id: RecordId | None = None
    dataset_id: Ref | None = None
    seed: Seed | None = None
    recipe_kind: Ref | None = None
    run_config: JsonObject | None = None
    status: Status = "pending"
    name: Name | None = None
    wandb_run_url: Ref | None = None
    tensorboard_path: Ref | None = None
    tensorboard_archive_url: Ref | None = None


class RunUpdate(_Open):
    status: Status = Field(default=None, description="may be omitted, never null")
    error_message: Text | None = None
    metrics: JsonObject | None = None
    summary: JsonObject | None = None
    group_id: RecordId | None = None
    seed: Seed | None = None


@with_config(ConfigDict(extra="forbid", strict=True))
class StepRow(TypedDict):
    """A row of a batch: a TypedDict, validated into a plain dict (a third faster than a model per row on
    the SDK's hottest route)."""

    step: Step
    split: NotRequired[Split]  # "train" when absent
    metrics: Metrics
    uid: NotRequired[Uid | None]
    ts: NotRequired[float | None]  # when the client logged it (the server's clock when absent)


class StepMetrics(_Closed):
    """Either one row (``step`` and ``metrics``, optional ``split`` and ``uid``) as upstream sends it, or a
    batch ``{"rows": [...]}`` (then no other field)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [
                {"required": ["step", "metrics"], "not": {"required": ["rows"]}},
                {"required": ["rows"], "not": {"anyOf": [{"required": ["step"]}, {"required": ["metrics"]}]}},
            ],
        },
    )

    # omitted, never null: the schema's oneOf says which combination a body has
    step: Step = Field(default=None)
    split: Split = "train"
    metrics: Metrics = Field(default=None)
    uid: Uid | None = None
    rows: Annotated[list[StepRow], Field(max_length=MAX_BATCH)] = Field(default=None)

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
    benchmark_id: Ref | None = None
    checkpoint_id: Ref | None = None
    model_ref: Ref | None = None
    step: Step | None = None
    breakdowns: JsonObject | None = None
    tags: Annotated[list[Name], Field(max_length=1000)] | None = None
    sdk_version: Ref | None = None


class CheckpointCreate(_Open):
    id: RecordId | None = None
    uri: Annotated[str, Field(min_length=1, max_length=4000)]
    label: Ref | None = None
    step: Step | None = None
    base_model: Ref | None = None
    is_final: bool = False


class Predictions(_Closed):
    predictions: Annotated[list[JsonObject], Field(max_length=MAX_ITEMS)]
    uids: Annotated[
        list[Uid | None],
        Field(
            max_length=MAX_ITEMS,
            description="replay ids by position: uids[i] names predictions[i]; a prediction without one "
            "(null, or past the end of the list) is always recorded",
        ),
    ] = Field(default_factory=list)

    def keys(self) -> list[str | None]:
        return [self.uids[i] if i < len(self.uids) else None for i in range(len(self.predictions))]


class DataCreate(_Closed):
    name: Name
    format: Ref | None = None
    version: Annotated[int, Field(ge=1, le=2**31), Integral] | None = None
    source_kind: Ref | None = None
    metadata: JsonObject | None = None
    transform: Json = None


class DataRows(_Closed):
    rows: Annotated[list[JsonObject], Field(max_length=MAX_ITEMS)]


class Error(BaseModel):
    """Every error answer: a message, and for invalid input the field(s) at fault."""

    error: str
    detail: list[dict[str, Any]] | None = None
