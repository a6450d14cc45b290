from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from evsys_sdk.spec.config import BackendConfig, DataConfig, ExperimentConfig, LogStoreSpec, RunConfig, safe_run_name


def test_unknown_key_is_rejected_at_every_level(mock_run: Any) -> None:
    run = mock_run()
    run["model"]["nmae"] = "x"
    with pytest.raises(ValidationError, match="nmae"):
        RunConfig.model_validate(run)
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        ExperimentConfig.model_validate({"name": "e", "run": mock_run(), "sede": 1})


def test_defaults_match_the_reference(mock_run: Any) -> None:
    cfg = ExperimentConfig.model_validate({"name": "e", "run": mock_run()})
    assert cfg.version == 1 and cfg.output_dir == "./outputs" and cfg.description == ""
    assert cfg.data_store.kind == "local" and cfg.log_store.kind == "jsonl"
    assert cfg.callbacks == [] and cfg.n_repeats == 1 and cfg.base_seed is None
    assert cfg.parent_experiment_id is None and cfg.metadata == {}
    run = cfg.run
    assert run is not None and run.seed == 42 and run.tags == [] and run.eval.enabled and run.eval.metrics == []
    assert BackendConfig().kind == "tinker"
    assert DataConfig(path="x.jsonl").hf_split == "train"


def test_backend_kind_is_a_free_string() -> None:
    assert BackendConfig(kind="my_cluster").kind == "my_cluster"


@pytest.mark.parametrize(
    "fields,message",
    [
        ({}, "exactly one of: run, runs, matrix (found 0)"),
        ({"n_repeats": 0}, "n_repeats must be >= 1 (got 0)"),
    ],
)
def test_structural_checks(mock_run: Any, fields: dict[str, Any], message: str) -> None:
    data: dict[str, Any] = {"name": "e", **fields}
    if "n_repeats" in fields:
        data["run"] = mock_run()
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExperimentConfig.model_validate(data)


@pytest.mark.parametrize(
    "metric,stated,refused",
    [
        ("train/final_loss", {}, True),
        ("val.error_rate", {}, True),
        ("eval/ppl", {"search": "maximize"}, False),  # an explicit direction, even the default, is a statement
        ("train/final_loss", {"expect": "lower"}, False),
        ("train/final_loss", {"expect": "higher"}, False),
        ("train/final_loss", {"search": None}, True),  # a search that leaves direction at its default
        ("test.exact_match", {}, False),
        ("glossary_score", {}, False),  # words, not substrings: "glossary" holds "loss"
    ],
)
def test_a_loss_like_success_metric_needs_its_direction(
    mock_run: Any, metric: str, stated: dict[str, Any], refused: bool
) -> None:
    data: dict[str, Any] = {"name": "e", "run": mock_run(), "metadata": {"success_metric": metric}}
    if "expect" in stated:
        data["metadata"]["expect"] = {"metric": metric, "better": stated["expect"]}
    if "search" in stated:
        data["search"] = {"budget": {"candidates": 2}, "space": "auto"}
        if stated["search"] is not None:
            data["search"]["direction"] = stated["search"]
    if refused:
        with pytest.raises(ValidationError, match=f"metadata.success_metric: '{metric}' reads as lower-is-better"):
            ExperimentConfig.model_validate(data)
    else:
        ExperimentConfig.model_validate(data)


def test_run_and_runs_together_is_an_error(mock_run: Any) -> None:
    with pytest.raises(ValidationError, match=r"found 2"):
        ExperimentConfig.model_validate({"name": "e", "run": mock_run(), "runs": [mock_run("b")]})


def test_continual_requires_a_single_run(mock_run: Any) -> None:
    continual = {"datasets": [{"source_kind": "in_memory", "rows": []}]}
    with pytest.raises(ValidationError, match="continual requires a single `run`"):
        ExperimentConfig.model_validate({"name": "e", "runs": [mock_run()], "continual": continual})
    run = mock_run()
    del run["data"]  # continual gives each stage its data
    cfg = ExperimentConfig.model_validate({"name": "e", "run": run, "continual": continual})
    assert cfg.arm_names() == ["r0_stage0"]


def test_run_without_data_needs_continual(mock_run: Any) -> None:
    run = mock_run()
    del run["data"]
    with pytest.raises(ValidationError, match="a run needs `data`"):
        ExperimentConfig.model_validate({"name": "e", "run": run})


def test_data_source_needs_its_location() -> None:
    with pytest.raises(ValidationError, match="data.path is required for source_kind=jsonl"):
        DataConfig()
    with pytest.raises(ValidationError, match="data.hf_dataset is required"):
        DataConfig(source_kind="hf_dataset")
    with pytest.raises(ValidationError):
        DataConfig(source_kind="csv", path="x")  # type: ignore[arg-type]
    assert DataConfig(dataset_name="corpus").dataset_name == "corpus"


def test_duplicate_run_names_are_rejected(mock_run: Any) -> None:
    with pytest.raises(ValidationError, match="duplicate run name 'a'"):
        ExperimentConfig.model_validate({"name": "e", "runs": [mock_run("a"), mock_run("a")]})
    with pytest.raises(ValidationError, match="'/' and ' ' both become '_'"):
        ExperimentConfig.model_validate({"name": "e", "runs": [mock_run("a/b"), mock_run("a_b")]})


def test_arm_names_cover_repeats_and_continual(mock_run: Any) -> None:
    cfg = ExperimentConfig.model_validate(
        {"name": "e", "runs": [mock_run("a"), mock_run("b")], "n_repeats": 2, "base_seed": 7}
    )
    assert cfg.arm_names() == ["a__s7", "a__s8", "b__s7", "b__s8"]
    run = mock_run("base", seed=3)
    cfg = ExperimentConfig.model_validate(
        {
            "name": "e",
            "run": run,
            "n_repeats": 2,
            "continual": {
                "datasets": [{"source_kind": "in_memory"}, {"source_kind": "in_memory"}],
                "name_template": "{base}-{i}",
            },
        }
    )
    assert cfg.arm_names() == ["base-0__s3", "base-0__s4", "base-1__s3", "base-1__s4"]


def test_matrix_expands_into_runs_at_validation(mock_run: Any) -> None:
    cfg = ExperimentConfig.model_validate(
        {
            "name": "e",
            "matrix": {"base_run": mock_run("b"), "axes": {"algorithm.params.lora_rank": [1, 4]}},
        }
    )
    assert cfg.matrix is None and cfg.runs is not None
    assert [r.name for r in cfg.runs] == ["b__lora_rank1", "b__lora_rank4"]
    assert cfg.runs[1].algorithm.params["lora_rank"] == 4


def test_log_store_params_fill_log_dir() -> None:
    assert LogStoreSpec().params_for("/o/r") == {"log_dir": "/o/r/logs"}
    assert LogStoreSpec(kind="jsonl", params={"log_dir": "/x"}).params_for("/o/r") == {"log_dir": "/x"}
    spec = LogStoreSpec(kind="multiplex", params={"children": [{"kind": "jsonl"}, {"kind": "null"}]})
    assert spec.params_for("/o/r")["children"] == [
        {"kind": "jsonl", "params": {"log_dir": "/o/r/logs/jsonl"}},
        {"kind": "null"},
    ]
    assert LogStoreSpec(kind="null").params_for("/o/r") == {}


def test_safe_run_name() -> None:
    assert safe_run_name("a/b c") == "a_b_c"
