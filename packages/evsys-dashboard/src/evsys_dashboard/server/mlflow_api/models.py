"""Request bodies of MLflow's tracking routes, with MLflow's own limits (``mlflow/utils/validation.py``).

The wire format is protobuf's JSON mapping with snake_case names: an int64 may come as a number or as a
decimal string, a double as a number or as ``"NaN"`` / ``"Infinity"`` / ``"-Infinity"``, an enum as its
name or its number. Fields a newer client adds are ignored (as MLflow's server ignores them), every
field named here is checked strictly. A body that fails answers 400 ``INVALID_PARAMETER_VALUE``.
"""

from __future__ import annotations

import functools
import math
import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from evsys_dashboard.server.models import MAX_INT

MAX_KEY = 250  # metric, param and tag keys
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
MAX_EXPERIMENT_NAME = 500
MAX_EXPERIMENT_TAG_VALUE = 20000
MAX_BATCH_METRICS = 1000
MAX_BATCH_PARAMS_TAGS = 100
MAX_BATCH_ENTITIES = 1000
MAX_SEARCH_RESULTS = 50000  # runs/search's max_results, as MLflow's server caps it
DEFAULT_SEARCH_RESULTS = 1000
MAX_HISTORY_RESULTS = 25000  # metrics/get-history's max_results (a page; without it, every point)
RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")  # proto numbers 1..5
VIEW_TYPES = ("ACTIVE_ONLY", "DELETED_ONLY", "ALL")  # proto numbers 1..3

_NAME = re.compile(r"^[/\w.\- :]*$")  # MLflow's valid metric, param and tag names (POSIX)
_DOUBLES = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _int64(value: Any) -> Any:
    """A proto int64: a JSON number, or a string of decimal digits (``5.0`` is 5; ``5.5``, ``true`` are not)."""
    if type(value) is float and value.is_integer():
        return int(value)
    if type(value) is str and re.fullmatch(r"-?\d{1,16}", value):
        return int(value)
    return value


def _double(value: Any) -> Any:
    if type(value) is int:
        return float(value)
    if type(value) is str:
        if value in _DOUBLES:
            return _DOUBLES[value]
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _enum(names: tuple[str, ...]) -> BeforeValidator:
    """A proto enum by name or by number (1-based)."""

    def by_number(value: Any) -> Any:
        return names[value - 1] if type(value) is int and 1 <= value <= len(names) else value

    return BeforeValidator(by_number)


@functools.lru_cache(maxsize=4096)  # a batch repeats a few keys a thousand times
def entity_name(name: str) -> str:
    """MLflow's rule for metric, param and tag keys: letters, digits, ``_ - . / : space``, and a path that
    does not resolve to another name (``a/../b``, ``./a``, ``/a``)."""
    if not _NAME.match(name):
        raise ValueError(
            "may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ),"
            " colons (:) and slashes (/)"
        )
    norm = posixpath.normpath(name)
    if norm != name or norm == "." or norm.startswith("..") or norm.startswith("/"):
        raise ValueError(f"would resolve to {norm!r} as a path; names must not")
    return name


Int64 = Annotated[int, Field(ge=-MAX_INT, le=MAX_INT), BeforeValidator(_int64)]
Double = Annotated[float, BeforeValidator(_double)]
Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY, pattern=r"^[/\w.\- :]+$"), AfterValidator(entity_name)]
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"  # evsys's record ids (MLflow's own are hex or digits)
Id = Annotated[str, Field(pattern=ID_PATTERN)]
RunStatus = Annotated[Literal["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"], _enum(RUN_STATUSES)]
ViewType = Annotated[Literal["ACTIVE_ONLY", "DELETED_ONLY", "ALL"], _enum(VIEW_TYPES)]
RunName = Annotated[str, Field(max_length=MAX_KEY)]
UserId = Annotated[str, Field(max_length=MAX_KEY)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Tag(_Message):
    key: Key
    value: Annotated[str, Field(max_length=MAX_TAG_VALUE)] = ""


class ExperimentTag(_Message):
    key: Key
    value: Annotated[str, Field(max_length=MAX_EXPERIMENT_TAG_VALUE)] = ""


class Param(_Message):
    key: Key
    value: Annotated[str, Field(max_length=MAX_PARAM_VALUE)] = ""


class Metric(_Message):
    key: Key
    value: Double
    timestamp: Int64
    step: Int64 = 0


class CreateExperiment(_Message):
    name: Annotated[str, Field(min_length=1, max_length=MAX_EXPERIMENT_NAME)]
    artifact_location: Annotated[str, Field(max_length=4000)] | None = None
    tags: Annotated[list[ExperimentTag], Field(max_length=MAX_BATCH_PARAMS_TAGS)] = []


class CreateRun(_Message):
    experiment_id: Id = "0"  # MLflow's Default experiment
    user_id: UserId | None = None
    run_name: RunName | None = None
    start_time: Int64 | None = None
    tags: Annotated[list[Tag], Field(max_length=MAX_BATCH_PARAMS_TAGS)] = []


class UpdateRun(_Message):
    run_id: Id  # older clients also send it as run_uuid, which is ignored
    status: RunStatus | None = None
    end_time: Int64 | None = None
    run_name: RunName | None = None


class LogBatch(_Message):
    run_id: Id
    metrics: Annotated[list[Metric], Field(max_length=MAX_BATCH_METRICS)] = []
    params: Annotated[list[Param], Field(max_length=MAX_BATCH_PARAMS_TAGS)] = []
    tags: Annotated[list[Tag], Field(max_length=MAX_BATCH_PARAMS_TAGS)] = []


class LogMetric(_Message):
    run_id: Id
    key: Key
    value: Double
    timestamp: Int64
    step: Int64 = 0


class LogParam(_Message):
    run_id: Id
    key: Key
    value: Annotated[str, Field(max_length=MAX_PARAM_VALUE)] = ""


class SetTag(_Message):
    run_id: Id
    key: Key
    value: Annotated[str, Field(max_length=MAX_TAG_VALUE)] = ""


class SearchRuns(_Message):
    experiment_ids: Annotated[list[Id], Field(max_length=1000)] = []
    filter: Annotated[str, Field(max_length=100_000)] | None = None
    run_view_type: ViewType = "ACTIVE_ONLY"
    max_results: Annotated[int, Field(ge=1, le=MAX_SEARCH_RESULTS), BeforeValidator(_int64)] = DEFAULT_SEARCH_RESULTS
    order_by: Annotated[list[Annotated[str, Field(max_length=1000)]], Field(max_length=100)] = []
    page_token: Annotated[str, Field(max_length=1000)] | None = None


class MlflowError(BaseModel):
    """Every error answer of the MLflow routes, in MLflow's shape."""

    error_code: str = Field(description="RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE, UNAUTHENTICATED, ...")
    message: str
