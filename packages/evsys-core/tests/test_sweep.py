from __future__ import annotations

from typing import Any

import pytest

from evsys_sdk.spec.config import RunConfig, Sweep
from evsys_sdk.spec.sweep import expand_runs, format_value


@pytest.mark.parametrize(
    "value,expected",
    [
        (1e-4, "0p0001"),
        (5e-5, "5e-05"),
        (0.5, "0p5"),
        (2.0, "2"),
        (1e20, "1e20"),
        (1.5e-7, "1p5e-07"),
        ("Qwen/Qwen3-4B", "Qwen_Qwen3-4B"),
        (True, "True"),
        (16, "16"),
    ],
)
def test_format_value(value: Any, expected: str) -> None:
    assert format_value(value) == expected


@pytest.fixture
def base(mock_run: Any) -> RunConfig:
    return RunConfig.model_validate(mock_run("base"))


def test_default_names_and_order(base: RunConfig) -> None:
    runs = expand_runs(base, {"algorithm.params.lora_rank": [1, 4], "algorithm.params.learning_rate": [1e-4, 5e-5]})
    assert [r.name for r in runs] == [
        "base__lora_rank1_learning_rate0p0001",
        "base__lora_rank1_learning_rate5e-05",
        "base__lora_rank4_learning_rate0p0001",
        "base__lora_rank4_learning_rate5e-05",
    ]
    assert runs[2].algorithm.params == {"batch_size": 1, "lora_rank": 4, "learning_rate": 1e-4}


def test_template_with_dotted_keys(base: RunConfig) -> None:
    runs = expand_runs(
        base,
        {"algorithm.params.lora_rank": [8], "model.name": ["Qwen/Qwen3-4B"]},
        "{base}__r{algorithm.params.lora_rank}__{model.name}",
    )
    assert [r.name for r in runs] == ["base__r8__Qwen_Qwen3-4B"]
    assert runs[0].model.name == "Qwen/Qwen3-4B"
    with pytest.raises(ValueError, match="name_template references unknown key 'lr'"):
        expand_runs(base, {"algorithm.params.lora_rank": [8]}, "{base}_{lr}")


def test_empty_axes_copy_and_independence(base: RunConfig) -> None:
    (only,) = expand_runs(base, {})
    assert only == base and only is not base
    runs = expand_runs(base, {"algorithm.params.lora_rank": [1, 2]})
    runs[0].algorithm.params["lora_rank"] = 99
    assert runs[1].algorithm.params["lora_rank"] == 2 and "lora_rank" not in base.algorithm.params


def test_strict_fields_are_revalidated(base: RunConfig) -> None:
    with pytest.raises(ValueError, match="modle"):
        expand_runs(base, {"modle.name": ["x"]})
    runs = expand_runs(base, {"algorithm.params.new.nested": [1]})
    assert runs[0].algorithm.params["new"] == {"nested": 1}


def test_sweep_object(base: RunConfig) -> None:
    sweep = Sweep(base, {"algorithm.params.lora_rank": [1, 2, 3], "seed": [1, 2]})
    assert len(sweep) == 6 and len(Sweep(base)) == 1
    assert [r.name for r in sweep.expand()] == [r.name for r in Sweep.from_matrix(sweep.to_matrix()).expand()]
    with pytest.raises(ValueError, match="Sweep axis 'seed' must be a non-empty list of values"):
        Sweep(base, {"seed": []})
