"""A config's relative paths resolve against its project root, whatever the current directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evsys_sdk.cli.scaffold import init_project, new_experiment
from evsys_sdk.loading.yaml_loader import check_config, load_yaml
from evsys_sdk.spec.paths import project_root

CONFIG = """\
name: first_try
output_dir: ./.evsys/outputs/first_try
metadata:
  benchmark:
    - {name: test, path: data/benchmark/qa, tags: [test]}
run:
  name: first_try
  data: {source_kind: jsonl, path: data/datasets/qa/v1/train.jsonl}
  model: {name: Qwen/Qwen3-4B, load_checkpoint_path: tinker://run/weights}
  backend: {kind: mock}
  algorithm: {kind: sft}
  eval:
    eval_data: {source_kind: hf_dataset, hf_dataset: data/datasets/qa/v1/test.jsonl}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A researcher project as `evsys init-project` and `evsys new-experiment` lay it out."""
    root = init_project(tmp_path / "proj")
    (root / "data/datasets/qa/v1").mkdir(parents=True)
    (root / "data/datasets/qa/v1/train.jsonl").write_text('{"prompt": "2+2", "answer": "4"}\n')
    (root / "data/datasets/qa/v1/test.jsonl").write_text('{"prompt": "3+3", "answer": "6"}\n')
    (root / "data/benchmark/qa").mkdir(parents=True)
    task = {"task_id": "t", "instruction": "2+2", "verifier": {"kind": "in_process", "fn_name": "exact_match"}}
    (root / "data/benchmark/qa/tasks.jsonl").write_text(
        json.dumps({**task, "verifier": {**task["verifier"], "expected": "4"}}) + "\n"
    )
    folder = new_experiment(root, "first try")
    (folder / "config.yaml").write_text(CONFIG)
    return folder / "config.yaml"


def test_an_experiment_config_names_project_paths_from_any_directory(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = project.parents[2]
    dumps = []
    for cwd, given in (
        (project.parent, "config.yaml"),
        (root, f"experiments/{project.parent.name}/config.yaml"),
        (Path("/"), str(project)),
    ):
        monkeypatch.chdir(cwd)
        cfg = load_yaml(given)
        check_config(cfg)  # the data file and the benchmark are found
        dumps.append(cfg.model_dump())
    assert dumps[0] == dumps[1] == dumps[2]
    assert project_root(project) == root.resolve()
    assert cfg.output_dir == str(root / ".evsys/outputs/first_try")
    assert cfg.data_store.params["root"] == str(root)
    assert cfg.metadata["benchmark"][0]["path"] == str(root / "data/benchmark/qa")
    assert cfg.run is not None and cfg.run.eval.eval_data is not None
    assert cfg.run.eval.eval_data.hf_dataset == str(root / "data/datasets/qa/v1/test.jsonl")  # it exists: a file
    assert cfg.run.model.name == "Qwen/Qwen3-4B" and cfg.run.model.load_checkpoint_path == "tinker://run/weights"
    (root / "models/tiny").mkdir(parents=True)  # a local model folder is a path like any other
    project.write_text(CONFIG.replace("name: Qwen/Qwen3-4B", "name: models/tiny"))
    local = load_yaml(project).run
    assert local is not None and local.model.name == str(root / "models/tiny")


def test_without_a_project_the_config_folder_is_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "exp").mkdir()
    path = tmp_path / "exp" / "config.yaml"
    path.write_text(CONFIG.replace("hf_dataset: data/datasets/qa/v1/test.jsonl", "hf_dataset: org/qa"))
    monkeypatch.chdir(tmp_path)
    cfg = load_yaml("exp/config.yaml")
    assert project_root("exp/config.yaml") == (tmp_path / "exp").resolve()
    assert cfg.output_dir == str((tmp_path / "exp/.evsys/outputs/first_try").resolve())
    assert cfg.run is not None and cfg.run.eval.eval_data is not None
    assert cfg.run.eval.eval_data.hf_dataset == "org/qa"  # not a local path: a hub id, as written


def test_a_config_given_as_a_dict_keeps_its_paths_as_written(tmp_path: Path) -> None:
    run = {"name": "r", "data": {"source_kind": "in_memory", "rows": [{"q": 1}]}, "model": {"name": "m"}}
    cfg = load_yaml({"name": "e", "output_dir": "out", "run": {**run, "algorithm": {"kind": "sft"}}})
    assert cfg.output_dir == "out" and cfg.data_store.params == {} and cfg._root is None


def test_the_workspace_is_the_projects_wherever_in_it_you_are(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evsys_sdk.tracking.store import workspace_root

    monkeypatch.delenv("EVSYS_WORKSPACE")
    root = project.parents[2]
    for cwd in (project.parent, root / "data", root):
        monkeypatch.chdir(cwd)
        assert workspace_root() == root / ".evsys"
    monkeypatch.chdir(root.parent)  # outside any project: the current directory's
    assert workspace_root() == Path(".evsys")
    monkeypatch.setenv("EVSYS_WORKSPACE", str(root / "elsewhere"))
    assert workspace_root() == root / "elsewhere"
