"""evsys's records as MLflow data: keys, values, params and step points, within MLflow's limits.

Shared by the exporter and the live store, so both turn a logged step into the very same points.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterator
from typing import Any

# MLflow's log-batch limits (mlflow/utils/validation.py): a request over any of them is refused whole.
MAX_METRICS = 1000
MAX_PARAMS = 100
MAX_TAGS = 100
MAX_BATCH_BYTES = 1_000_000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
_BAD_KEY_CHARS = re.compile(r"[^\w\-. /:]")  # what MLflow accepts in a metric, param or tag key
POINT_BYTES = 64  # a metric's JSON beside its key: {"key":"","value":..,"timestamp":..,"step":..}


@functools.lru_cache(maxsize=4096)  # a run logs the same few keys at every step
def metric_key(key: str) -> str:
    """``key`` as MLflow accepts it in a metric, param or tag."""
    return _BAD_KEY_CHARS.sub("_", key)[:250]


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``{"a": {"b": 1}}`` as ``("a.b", "1")``; a list or an empty dict is one JSON value."""
    if isinstance(value, dict) and (value or not prefix):
        for k, v in value.items():
            yield from flatten(v, f"{prefix}{k}.")
    else:
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        yield metric_key(prefix[:-1]), text[:MAX_PARAM_VALUE]


def number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None  # null (a NaN evsys recorded) or not a number: MLflow's JSON has no place for it
    return float(value)


def row_points(step: int, split: str, metrics: dict[str, Any], ts: float) -> list[dict[str, Any]]:
    """One step row as MLflow points: a split other than ``train`` prefixes its keys (``eval/loss``)
    unless they carry it already (``val/<benchmark>/<metric>``)."""
    prefix = "" if split == "train" else f"{split}/"
    ms = int(ts * 1000)
    return [
        {"key": metric_key(k if k.startswith(prefix) else prefix + k), "value": n, "timestamp": ms, "step": step}
        for k, v in metrics.items()
        if (n := number(v)) is not None
    ]
