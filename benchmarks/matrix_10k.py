"""Expand and validate a 10,000-arm matrix (10 lora ranks x 10 learning rates x 100 seeds on mock sft):
``load_yaml`` (expansion + schema validation) plus ``check_config`` (deep validation), from a dict and
from a YAML file; median of 3 after a warm-up that discovers plugins."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from _bench import mock_matrix, report

from evsys_sdk import validate_yaml
from evsys_sdk.loading.yaml_loader import check_config, load_yaml

RUNS = 3


def config(axes: dict[str, list[Any]]) -> dict[str, Any]:
    return mock_matrix("matrix_10k", "./outputs/matrix_10k", axes)


def timed(source: dict[str, Any] | Path) -> tuple[float, float]:
    """(load_yaml, check_config) wall time in s."""
    start = time.perf_counter()
    cfg = load_yaml(source)
    loaded = time.perf_counter()
    check_config(cfg)
    if len(cfg.runs or []) != 10_000:
        raise SystemExit(f"expected 10,000 arms, got {len(cfg.runs or [])}")
    return loaded - start, time.perf_counter() - loaded


def median(source: dict[str, Any] | Path) -> tuple[float, float]:
    load, deep = zip(*(timed(source) for _ in range(RUNS)), strict=True)
    return statistics.median(load), statistics.median(deep)


data = config(
    {
        "algorithm.params.lora_rank": [4 * (i + 1) for i in range(10)],
        "algorithm.params.learning_rate": [1e-5 * (i + 1) for i in range(10)],
        "seed": list(range(100)),
    }
)
if problems := validate_yaml(config({"seed": [1, 2]}), deep=True):  # warm-up: plugin discovery, model schemas
    raise SystemExit(f"the config does not validate: {problems}")
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "matrix_10k.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    yaml_load, yaml_deep = median(path)
dict_load, dict_deep = median(data)

report(
    "matrix_10k",
    dict_load + dict_deep,
    "s",
    "<",
    2,
    {
        "dict_load_yaml_s": round(dict_load, 3),
        "dict_check_config_s": round(dict_deep, 3),
        "yaml_file_total_s": round(yaml_load + yaml_deep, 3),
        "yaml_file_load_yaml_s": round(yaml_load, 3),
        "yaml_file_check_config_s": round(yaml_deep, 3),
    },
)
