"""Deep validation reads every referenced file before any arm: streamed, once per file, transforms only if pure."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from evsys_sdk import validate_yaml
from evsys_sdk.base.errors import ConfigError
from evsys_sdk.builtins.data_stores import LocalDataStore
from evsys_sdk.loading.yaml_loader import check_config, load_yaml
from evsys_sdk.plugins.host import PluginHost
from evsys_sdk.plugins.registry import register_transform


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def jsonl_run(path: str = "train.jsonl", **data: Any) -> dict[str, Any]:
    return {
        "name": "arm",
        "data": {"source_kind": "jsonl", "path": path, **data},
        "model": {"name": "tiny"},
        "backend": {"kind": "mock"},
        "algorithm": {"kind": "sft"},
    }


def test_a_file_is_streamed_and_read_once_for_every_arm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "train.jsonl").write_text(
        "".join(json.dumps({"prompt": f"p{i}", "answer": "a"}) + "\n" for i in range(500))
    )
    opened: list[str] = []
    streamed = LocalDataStore.iter_jsonl

    def counting(self: LocalDataStore, path: str) -> Iterator[dict[str, Any]]:
        opened.append(path)
        return streamed(self, path)

    def whole_file(self: LocalDataStore, path: str) -> list[dict[str, Any]]:
        raise AssertionError("validation must not hold the whole file")

    monkeypatch.setattr(LocalDataStore, "iter_jsonl", counting)
    monkeypatch.setattr(LocalDataStore, "read_jsonl", whole_file)
    matrix = {"base_run": jsonl_run(), "axes": {"algorithm.params.lora_rank": list(range(1, 201))}}
    check_config(load_yaml(write_config(tmp_path, {"name": "e", "output_dir": "out", "matrix": matrix})))
    assert opened == ["train.jsonl"]


def test_a_bad_line_anywhere_names_its_own_line_and_column(tmp_path: Path) -> None:
    rows = [json.dumps({"prompt": f"p{i}"}) for i in range(1000)]
    rows[996] = '{"prompt": "p996",, "x": 1}'
    (tmp_path / "train.jsonl").write_text("\n".join(rows) + "\n")
    problems = validate_yaml(write_config(tmp_path, {"name": "e", "run": jsonl_run()}), deep=True)
    assert problems == [
        f"{tmp_path / 'config.yaml'}:6:11: run.data.path: {tmp_path / 'train.jsonl'}:997: invalid JSON: "
        "Expecting property name enclosed in double quotes at column 19"
    ]
    (tmp_path / "train.jsonl").write_text('{"prompt": "p"}\n[1, 2]\n')
    problems = validate_yaml(write_config(tmp_path, {"name": "e", "run": jsonl_run()}), deep=True)
    assert problems[0].endswith("train.jsonl:2: a row must be a JSON object, got list")


@pytest.fixture
def transforms(plugin_host: PluginHost) -> list[str]:
    """``drop_all`` (pure: run by validation) and ``sampler`` (not pure: left to the run)."""
    calls: list[str] = []

    @register_transform("drop_all")
    class DropAll:
        pure: ClassVar[bool] = True

        def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            calls.append("drop_all")
            return (r for r in rows if False)

    @register_transform("sampler")
    class Sampler:
        def __call__(self, rows: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
            calls.append("sampler")
            raise AssertionError("a transform that is not pure is never run by validation")

    return calls


def test_empty_after_pure_transforms_and_impure_ones_wait(tmp_path: Path, transforms: list[str]) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    cfg = {"name": "e", "run": jsonl_run(transforms=[{"kind": "drop_all"}])}
    problems = validate_yaml(write_config(tmp_path, cfg), deep=True)
    assert len(problems) == 1 and problems[0].endswith(
        "run.data.transforms: the training set is empty after transforms (drop_all): training needs a row"
    )
    cfg = {"name": "e", "run": jsonl_run(transforms=[{"kind": "drop_all"}, {"kind": "sampler"}])}
    assert validate_yaml(write_config(tmp_path, cfg), deep=True) == []
    assert transforms == ["drop_all"]  # the impure chain was not run, but its file was read


def test_eval_data_may_be_empty_but_must_exist(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    (tmp_path / "empty.jsonl").write_text("")
    run = {**jsonl_run(), "eval": {"eval_data": {"source_kind": "jsonl", "path": "empty.jsonl"}}}
    assert validate_yaml(write_config(tmp_path, {"name": "e", "run": run}), deep=True) == []
    run["eval"]["eval_data"]["path"] = "nope.jsonl"
    problems = validate_yaml(write_config(tmp_path, {"name": "e", "run": run}), deep=True)
    assert (
        len(problems) == 1 and f"run.eval.eval_data.path: data file not found: {tmp_path / 'nope.jsonl'}" in problems[0]
    )


def test_matrix_base_values_are_validated_as_written(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    base = {**jsonl_run(), "algorithm": {"kind": "sft", "params": {"lora_rank": "sixteen", "batch_size": 2}}}
    matrix = {"base_run": base, "axes": {"algorithm.params.lora_rank": [8, 32]}}
    problems = validate_yaml(write_config(tmp_path, {"name": "e", "matrix": matrix}), deep=True)
    assert len(problems) == 1
    assert "matrix.base_run.algorithm.params.lora_rank: Input should be a valid integer" in problems[0]
    assert problems[0].endswith('(got "sixteen") (in the base run, overridden by an axis)')
    # an inherited bad value is reported once, by the runs that inherit it, not again for the base
    base["algorithm"]["params"] = {"lora_rank": 4, "batch_size": "two"}
    problems = validate_yaml(write_config(tmp_path, {"name": "e", "matrix": matrix}), deep=True)
    assert len(problems) == 1 and "batch_size" in problems[0] and "and 1 more" in problems[0]


def test_benchmark_without_tasks_and_bad_metadata(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    bench = tmp_path / "bench"
    bench.mkdir()
    cfg = {"name": "e", "run": jsonl_run(), "metadata": {"benchmark": {"path": "bench"}}}
    problems = validate_yaml(write_config(tmp_path, cfg), deep=True)
    assert problems[0].endswith(f"metadata.benchmark.path: benchmark folder {bench} has no tasks.jsonl")
    (bench / "tasks.jsonl").write_text("\n")
    problems = validate_yaml(write_config(tmp_path, cfg), deep=True)
    assert problems[0].endswith(f"{bench / 'tasks.jsonl'} holds no tasks")
    (bench / "metadata.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"metadata.benchmark.path: .*bench/metadata.yaml:2:1: YAML syntax error"):
        check_config(load_yaml(write_config(tmp_path, cfg)))
