"""Names the seeds document, at the paths they document them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import evsys_sdk
from evsys_sdk.base.errors import UnknownKindError
from evsys_sdk.builtins.data_stores import LocalDataStore
from evsys_sdk.cli.main import main
from evsys_sdk.plugins.registry import AlgorithmFamily, get_algorithm, list_algorithms
from evsys_sdk.spec.config import DataConfig, TransformSpec
from evsys_sdk.spec.families import SFTParams


def test_get_algorithm_of_a_family_resolves_by_backend() -> None:
    sft = get_algorithm("sft")
    assert isinstance(sft, AlgorithmFamily) and sft.name == "sft" and sft.Config is SFTParams
    assert sft.resolve("mock") is get_algorithm("mock_sft")
    assert sft.implementations()["mock"] == "mock_sft"
    assert get_algorithm("rl").resolve("mock") is get_algorithm("mock_rl")
    with pytest.raises(UnknownKindError, match="No implementation of algorithm family 'sft' for backend 'nope'"):
        sft.resolve("nope")
    with pytest.raises(UnknownKindError, match="did you mean 'mock_sft'"):
        get_algorithm("mock_sfft")


def test_list_algorithms_lists_families_and_implementations() -> None:
    names = list_algorithms()
    assert {"sft", "sdft", "rl", "mock_sft", "mock_sdft", "mock_rl", "combo"} <= set(names)
    assert names == sorted(names) and evsys_sdk.list_algorithms() == names


def test_runner_load_rows_and_apply_transforms() -> None:
    from evsys_sdk.builtins.data_stores import InMemoryDataStore
    from evsys_sdk.run.runner import _apply_transforms, _load_rows

    rows = [{"query": "make an issue", "tool_slug": "github_create_issue"}]
    raw = _load_rows(DataConfig(source_kind="in_memory", rows=rows), InMemoryDataStore())
    assert raw == rows
    chat = _apply_transforms(raw, [TransformSpec(kind="jsonl_to_chat", params={"user_template": "{query}"})])
    assert chat[0]["messages"][0] == {"role": "user", "content": "make an issue"}


def test_local_data_store_root_takes_any_path_like(tmp_path: Path) -> None:
    class Where(os.PathLike[str]):
        def __fspath__(self) -> str:
            return str(tmp_path / "other")

    for root, folder in ((tmp_path, tmp_path), (Where(), tmp_path / "other")):
        store = LocalDataStore(root=root)
        store.write_jsonl("rows.jsonl", [{"a": 1}])
        assert store.root == folder.resolve() and (folder / "rows.jsonl").is_file()
        assert store.read_jsonl("rows.jsonl") == [{"a": 1}]
    with pytest.raises(ValueError, match="root"):
        LocalDataStore(root=3)


def test_dashboard_paths_without_evsys_dashboard_name_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from evsys_sdk import constants, dashboard_client

    for module in ("evsys_dashboard", "evsys_dashboard.constants"):
        monkeypatch.setitem(sys.modules, module, None)  # as if the package were not installed
    for seed_module, name in ((dashboard_client, "DashboardClient"), (constants, "API_PREFIX")):
        monkeypatch.delitem(seed_module.__dict__, name, raising=False)
        with pytest.raises(ImportError, match=rf"{seed_module.__name__}\.{name} is provided by evsys-dashboard: "):
            getattr(seed_module, name)
    with pytest.raises(ImportError, match="pip install evsys-dashboard"):
        from evsys_sdk.dashboard_client import ExperimentRun  # noqa: F401
    with pytest.raises(ImportError, match=r"\(from this checkout: pip install \./packages/evsys-dashboard\)"):
        evsys_sdk.__getattr__("EvsysAuthError")


def scaffold(root: Path) -> Path:
    assert main(["init-project", str(root)]) == 0
    assert main(["new-experiment", "first", "--project-root", str(root), "--date", "20260102"]) == 0
    data = root / "data" / "datasets" / "<name>" / "v1"
    data.mkdir(parents=True)
    (data / "train.jsonl").write_text('{"prompt": "p", "answer": "a"}\n')
    return root / "experiments" / "20260102_first"


@pytest.mark.parametrize("cwd", ["elsewhere", "root", "folder"])
def test_scaffolded_run_py_runs_as_generated(tmp_path: Path, capsys: Any, cwd: str) -> None:
    folder = scaffold(tmp_path / "proj")
    # The run needs the project's own transform: it completes only if run.py imported `scripts`.
    (tmp_path / "proj" / "scripts" / "transforms.py").write_text(
        "from evsys_sdk import register_transform\n\n\n@register_transform('project_identity')\n"
        "class ProjectIdentity:\n    def __call__(self, rows):\n        return rows\n"
    )
    config = folder / "config.yaml"
    path_line = "    path: data/datasets/<name>/v1/train.jsonl\n"
    config.write_text(config.read_text().replace(path_line, path_line + "    transforms: [{kind: project_identity}]\n"))
    assert "project_identity" in config.read_text()
    where = {"elsewhere": tmp_path, "root": tmp_path / "proj", "folder": folder}[cwd]
    env = {**os.environ, "PYTHONPATH": ""}
    done = subprocess.run(
        [sys.executable, str(folder / "run.py")], cwd=where, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("1/1 arms completed.")
    assert (tmp_path / "proj" / ".evsys" / "outputs" / "first" / "first" / "arm_result.json").is_file()
