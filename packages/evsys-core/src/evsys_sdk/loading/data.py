"""Loading a run's rows from its data source and applying its transforms."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.base.install_hints import pip_install
from evsys_sdk.spec.config import DataConfig
from evsys_sdk.spec.protocols import DataStore


def load_rows(data: DataConfig, store: DataStore, tracking: Any = None) -> list[dict[str, Any]]:
    """The raw rows of ``data`` (before transforms). ``dataset_id`` / ``dataset_name`` are pulled
    through the workspace cache from ``tracking`` (default: the workspace's local store)."""
    if data.dataset_id or data.dataset_name:
        from evsys_sdk.tracking.workspace import Workspace, read_jsonl_rows

        workspace = Workspace(tracking)
        try:
            dataset_id = data.dataset_id or workspace.dataset_id_for_name(str(data.dataset_name))
            return read_jsonl_rows(workspace.pull_dataset(dataset_id).path)
        except FileNotFoundError as exc:
            raise EvsysError(f"data: {exc}") from None
    if data.source_kind == "in_memory":
        return [dict(r) for r in data.rows or []]
    if data.source_kind == "hf_dataset":
        return _load_hf(data)
    assert data.path is not None  # DataConfig guarantees a path for jsonl/json
    if not store.exists(data.path):
        raise EvsysError(f"data.path '{data.path}' not found (relative paths resolve under the data store root)")
    if data.source_kind == "jsonl":
        try:
            return store.read_jsonl(data.path)
        except json.JSONDecodeError as exc:  # a store of another kind parsing a whole file
            raise EvsysError(f"{data.path}:{exc.lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from None
    value = store.read_json(data.path)
    if not isinstance(value, list):
        raise EvsysError(
            f"data.path '{data.path}' (source_kind=json) must hold a JSON list of rows, got {type(value).__name__}"
        )
    return value


def _load_hf(data: DataConfig) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError:
        hint = pip_install("evsys-core[hf]")
        raise EvsysError(f"source_kind=hf_dataset needs the datasets package: {hint}") from None
    assert data.hf_dataset is not None
    local = Path(data.hf_dataset).expanduser()
    if local.is_file():
        builder = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet"}.get(local.suffix)
        if builder is None:
            raise EvsysError(f"hf_dataset file '{local}' must be .jsonl, .json, .csv or .parquet")
        ds = datasets.load_dataset(builder, data_files=str(local), split=data.hf_split)
    elif (local / "dataset_dict.json").exists() or (local / "state.json").exists():
        saved = datasets.load_from_disk(str(local))
        ds = saved[data.hf_split] if isinstance(saved, datasets.DatasetDict) else saved
    else:
        ds = datasets.load_dataset(data.hf_dataset, split=data.hf_split)
    return [dict(row) for row in ds]
