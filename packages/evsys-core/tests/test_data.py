from __future__ import annotations

import json
from pathlib import Path

import pytest

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.builtins.data_stores import InMemoryDataStore, LocalDataStore
from evsys_sdk.loading.data import load_rows
from evsys_sdk.spec.config import DataConfig


def test_in_memory_rows_are_copied() -> None:
    rows = [{"a": 1}]
    loaded = load_rows(DataConfig(source_kind="in_memory", rows=rows), InMemoryDataStore())
    loaded[0]["a"] = 2
    assert rows == [{"a": 1}]
    assert load_rows(DataConfig(source_kind="in_memory"), InMemoryDataStore()) == []


def test_jsonl_and_json_through_the_store(tmp_path: Path) -> None:
    (tmp_path / "rows.jsonl").write_text('{"a": 1}\n\n{"a": 2}\n')
    (tmp_path / "rows.json").write_text(json.dumps([{"b": 1}]))
    (tmp_path / "obj.json").write_text(json.dumps({"b": 1}))
    store = LocalDataStore(root=str(tmp_path))
    assert load_rows(DataConfig(path="rows.jsonl"), store) == [{"a": 1}, {"a": 2}]
    assert load_rows(DataConfig(source_kind="json", path="rows.json"), store) == [{"b": 1}]
    with pytest.raises(EvsysError, match="must hold a JSON list of rows, got dict"):
        load_rows(DataConfig(source_kind="json", path="obj.json"), store)
    with pytest.raises(EvsysError, match="data.path 'nope.jsonl' not found"):
        load_rows(DataConfig(path="nope.jsonl"), store)


def test_datasets_by_name_and_id_through_the_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from evsys_sdk.tracking.store import LocalStore

    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "ws"))
    store = LocalStore(tmp_path / "ws" / "evsys.db")
    old = store.create_dataset(name="corpus", format="chat_messages")
    store.add_dataset_rows(old["id"], [{"v": 1}])
    new = store.create_dataset(name="corpus")
    store.add_dataset_rows(new["id"], [{"v": 2}, {"v": 3}])
    assert new["version"] == 2
    assert load_rows(DataConfig(dataset_name="corpus"), InMemoryDataStore(), store) == [{"v": 2}, {"v": 3}]
    assert load_rows(DataConfig(dataset_id=old["id"]), InMemoryDataStore()) == [{"v": 1}]  # default: the local store
    assert (tmp_path / "ws" / "datasets" / f"{old['id']}.jsonl").exists()
    with pytest.raises(EvsysError, match="no dataset named 'nope' in this project"):
        load_rows(DataConfig(dataset_name="nope"), InMemoryDataStore(), store)


def test_hf_dataset_without_the_package_gives_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_datasets(name: str, *args: object, **kwargs: object) -> object:
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(EvsysError, match=r'pip install "evsys-core\[hf\]"'):
        load_rows(DataConfig(source_kind="hf_dataset", hf_dataset="x"), InMemoryDataStore())


@pytest.mark.hf
def test_hf_dataset_from_local_files(tmp_path: Path) -> None:
    import datasets

    (tmp_path / "train.jsonl").write_text('{"q": "a"}\n{"q": "b"}\n')
    rows = load_rows(
        DataConfig(source_kind="hf_dataset", hf_dataset=str(tmp_path / "train.jsonl")), InMemoryDataStore()
    )
    assert rows == [{"q": "a"}, {"q": "b"}]
    datasets.DatasetDict({"test": datasets.Dataset.from_list([{"q": "c"}])}).save_to_disk(str(tmp_path / "saved"))
    cfg = DataConfig(source_kind="hf_dataset", hf_dataset=str(tmp_path / "saved"), hf_split="test")
    assert load_rows(cfg, InMemoryDataStore()) == [{"q": "c"}]
    (tmp_path / "rows.txt").write_text("q\n")
    with pytest.raises(EvsysError, match="must be .jsonl"):
        load_rows(DataConfig(source_kind="hf_dataset", hf_dataset=str(tmp_path / "rows.txt")), InMemoryDataStore())
