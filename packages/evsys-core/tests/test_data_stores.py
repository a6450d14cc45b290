from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from evsys_sdk.builtins.data_stores import DATA_STORE_CLASSES, InMemoryDataStore, LocalDataStore
from evsys_sdk.spec.protocols import DataStore

ROWS: list[dict[str, Any]] = [{"prompt": "2+2?", "answer": "4"}, {"prompt": "héllo ✓", "meta": {"n": [1, 2]}}]

# --- local -------------------------------------------------------------------------------------------


def test_local_root_is_expanded_and_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalDataStore().root == tmp_path.resolve()
    assert LocalDataStore(root="sub/..").root == tmp_path.resolve()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert LocalDataStore(root="~/data").root == (tmp_path / "home" / "data").resolve()


def test_local_jsonl_round_trip_under_root_creating_parents(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path))
    store.write_jsonl("a/b/rows.jsonl", iter(ROWS))  # any iterable, e.g. a generator
    assert store.read_jsonl("a/b/rows.jsonl") == ROWS
    assert (tmp_path / "a" / "b" / "rows.jsonl").read_text(encoding="utf-8").count("\n") == 2


def test_local_jsonl_read_skips_blank_lines_and_locates_bad_ones(tmp_path: Path) -> None:
    (tmp_path / "r.jsonl").write_text('{"a": 1}\n\n   \n{"a": 2}\n', encoding="utf-8")
    store = LocalDataStore(root=str(tmp_path))
    assert store.read_jsonl("r.jsonl") == [{"a": 1}, {"a": 2}]
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{"a": \n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: invalid JSON: Expecting value at column 6$"):
        store.read_jsonl("bad.jsonl")


def test_local_json_round_trip_with_two_space_indent(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path))
    value = {"n": 1, "items": [1, 2], "s": "x"}
    store.write_json("deep/v.json", value)
    assert store.read_json("deep/v.json") == value
    assert (tmp_path / "deep" / "v.json").read_text().startswith('{\n  "n": 1')


def test_local_absolute_paths_are_used_as_is(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path / "root"))
    outside = tmp_path / "elsewhere" / "v.json"
    store.write_json(str(outside), [1])
    assert outside.exists() and not (tmp_path / "root").exists()
    assert store.read_json(str(outside)) == [1]
    assert store.exists(str(outside))


def test_local_exists_and_missing_files(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path))
    assert not store.exists("x.json")
    with pytest.raises(FileNotFoundError):
        store.read_json("x.json")
    with pytest.raises(FileNotFoundError):
        store.read_jsonl("x.jsonl")
    store.write_json("x.json", {})
    assert store.exists("x.json")


def test_local_writes_are_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = LocalDataStore(root=str(tmp_path))
    store.write_jsonl("r.jsonl", ROWS)
    store.write_json("v.json", {"v": 1})

    def crash(*_: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        store.write_jsonl("r.jsonl", [{"new": True}])
    with pytest.raises(OSError):
        store.write_json("v.json", {"v": 2})
    monkeypatch.undo()
    assert store.read_jsonl("r.jsonl") == ROWS
    assert store.read_json("v.json") == {"v": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.jsonl", "v.json"]  # no temp files left


def test_local_list_directory_glob_and_everything(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path))
    for rel in ("data/b.jsonl", "data/a.jsonl", "data/sub/c.json", "top.json"):
        store.write_json(rel, {})
    (tmp_path / "data" / "empty_dir").mkdir()

    assert store.list("data") == ["data/a.jsonl", "data/b.jsonl", "data/sub/c.json"]  # recursive, files only
    assert store.list("data/") == store.list("data")
    assert store.list("data/*.jsonl") == ["data/a.jsonl", "data/b.jsonl"]
    assert store.list("**/*.json") == ["data/sub/c.json", "top.json"]
    assert store.list("data/*") == ["data/a.jsonl", "data/b.jsonl"]  # the dirs matched are not files
    assert store.list() == ["data/a.jsonl", "data/b.jsonl", "data/sub/c.json", "top.json"]
    assert store.list("nothing*") == []


def test_local_list_of_absolute_prefix_outside_root(tmp_path: Path) -> None:
    store = LocalDataStore(root=str(tmp_path / "root"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "f.txt").write_text("x")
    assert store.list(str(tmp_path / "other")) == [(tmp_path / "other" / "f.txt").as_posix()]


def test_local_config_is_strict() -> None:
    with pytest.raises(ValidationError, match="rot"):
        LocalDataStore(rot=".")


# --- in_memory ---------------------------------------------------------------------------------------


def test_in_memory_round_trips() -> None:
    store = InMemoryDataStore()
    store.write_jsonl("rows.jsonl", (r for r in ROWS))
    store.write_json("v.json", {"a": [1]})
    assert store.read_jsonl("rows.jsonl") == ROWS
    assert store.read_json("v.json") == {"a": [1]}


def test_in_memory_values_are_isolated_copies() -> None:
    store = InMemoryDataStore()
    rows = [{"a": {"b": 1}}]
    store.write_jsonl("r", rows)
    rows[0]["a"]["b"] = 2  # mutating what was written
    read = store.read_jsonl("r")
    read.append({"x": 1})  # mutating what was read
    read[0]["a"]["b"] = 3
    assert store.read_jsonl("r") == [{"a": {"b": 1}}]
    value = {"k": [1]}
    store.write_json("v", value)
    value["k"].append(2)
    store.read_json("v")["k"].append(3)
    assert store.read_json("v") == {"k": [1]}


def test_in_memory_missing_paths_raise_file_not_found() -> None:
    store = InMemoryDataStore()
    store.write_json("v.json", 1)
    store.write_jsonl("r.jsonl", [])
    with pytest.raises(FileNotFoundError, match=r"no JSON at 'r\.jsonl'"):
        store.read_json("r.jsonl")  # JSONL and JSON values are kept apart
    with pytest.raises(FileNotFoundError, match=r"no JSONL at 'v\.json'"):
        store.read_jsonl("v.json")
    with pytest.raises(FileNotFoundError):
        store.read_json("absent")


def test_in_memory_exists_and_list() -> None:
    store = InMemoryDataStore()
    assert not store.exists("a/x") and store.list() == []
    store.write_jsonl("b/rows", [])
    store.write_json("a/x", 1)
    store.write_jsonl("a/y", [])
    store.write_jsonl("a/x", [])  # same path in both maps: listed once
    assert store.exists("a/x") and store.exists("b/rows") and not store.exists("a")
    assert store.list() == ["a/x", "a/y", "b/rows"]
    assert store.list("a/") == ["a/x", "a/y"]
    assert store.list("c") == []


def test_in_memory_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        InMemoryDataStore(root=".")


# --- all ---------------------------------------------------------------------------------------------


def test_data_store_classes_satisfy_the_protocol(tmp_path: Path) -> None:
    assert {cls.name: cls for cls in DATA_STORE_CLASSES} == {"local": LocalDataStore, "in_memory": InMemoryDataStore}
    assert isinstance(LocalDataStore(root=str(tmp_path)), DataStore)
    assert isinstance(InMemoryDataStore(), DataStore)


def test_local_and_in_memory_agree_on_round_trips(tmp_path: Path) -> None:
    for store in (LocalDataStore(root=str(tmp_path)), InMemoryDataStore()):
        store.write_jsonl("d/rows.jsonl", ROWS)
        store.write_json("d/meta.json", {"n": 2})
        assert store.read_jsonl("d/rows.jsonl") == ROWS
        assert store.read_json("d/meta.json") == {"n": 2}
        assert store.list("d") == ["d/meta.json", "d/rows.jsonl"]
