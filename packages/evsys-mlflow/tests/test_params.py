"""Run configs flattened into MLflow params: dotted keys, JSON leaves, keys MLflow accepts."""

from __future__ import annotations

import pytest

from evsys_mlflow.points import flatten

pytestmark = pytest.mark.timeout(30)


def test_a_config_flattens_into_dotted_params() -> None:
    config = {"algorithm": {"kind": "sft", "params": {"lr": 0.001, "targets": ["q", "v"]}}, "extra": {}, "n": None}
    assert dict(flatten(config)) == {
        "algorithm.kind": "sft",
        "algorithm.params.lr": "0.001",
        "algorithm.params.targets": '["q", "v"]',
        "extra": "{}",
        "n": "null",
    }


def test_no_config_is_no_params_and_odd_keys_are_made_valid() -> None:
    assert list(flatten({})) == []  # a run recorded without a config: MLflow refuses an empty key
    assert dict(flatten({"a@b": {"c[0]": 1}})) == {"a_b.c_0_": "1"}
    assert len(dict(flatten({"long": "x" * 7000}))["long"]) == 6000
