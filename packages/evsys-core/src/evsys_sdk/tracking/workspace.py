"""The local workspace: datasets and benchmarks pulled by id (or name) into a version-immutable cache."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.tracking.store import TrackingStore, workspace_root

PAGE = 500
SUBDIRS = ("datasets", "benchmarks", "validation", "scripts", "outputs")


@dataclass
class MaterializedDataset:
    path: Path
    format: str | None
    transform: Any
    n_rows: int
    cached: bool


class Workspace:
    """``root`` (default: ``store.workspace_root()``, the project's ``.evsys``) holding pulled rows and outputs.

    ``store`` serves the rows; without one, the local store of this workspace is used, so reading the
    cache never needs credentials.
    """

    def __init__(self, store: TrackingStore | None = None, *, root: str | os.PathLike[str] | None = None):
        self.root = workspace_root(root)
        self.root.mkdir(parents=True, exist_ok=True)
        ignore = self.root / ".gitignore"
        if not ignore.exists():
            ignore.write_text("*\n")
        for sub in SUBDIRS:
            (self.root / sub).mkdir(exist_ok=True)
        self._store = store

    @property
    def store(self) -> TrackingStore:
        if self._store is None:
            from evsys_sdk.tracking.store import LocalStore

            self._store = LocalStore(self.root / "evsys.db")
        return self._store

    def pull_dataset(self, dataset_id: str, *, force: bool = False) -> MaterializedDataset:
        return self._pull("dataset", "datasets", dataset_id, force)

    def pull_benchmark(self, benchmark_id: str, *, force: bool = False) -> MaterializedDataset:
        return self._pull("benchmark", "benchmarks", benchmark_id, force)

    def pull_validation(self, benchmark_id: str, *, force: bool = False) -> MaterializedDataset:
        return self._pull("benchmark", "validation", benchmark_id, force)

    def _pull(self, kind: str, sub: str, data_id: str, force: bool) -> MaterializedDataset:
        path = self.root / sub / f"{data_id}.jsonl"
        manifest = self.root / sub / f"{data_id}.meta.json"
        if force:
            path.unlink(missing_ok=True)
            manifest.unlink(missing_ok=True)
        # Ids are version-immutable: a complete cache of an id is valid forever (no remote round trip).
        if path.exists() and manifest.exists():
            meta = json.loads(manifest.read_text())
            if meta.get("complete"):
                return MaterializedDataset(path, meta.get("format"), meta.get("transform"), int(meta["n_rows"]), True)
        remote = self.store.get_dataset(data_id) if kind == "dataset" else self.store.get_benchmark(data_id)
        if remote is None:
            raise FileNotFoundError(f"{kind} {data_id} not found")
        get_rows = self.store.get_dataset_rows if kind == "dataset" else self.store.get_benchmark_rows
        tmp = path.with_name(f".{path.name}.tmp")
        n = 0
        with open(tmp, "w", encoding="utf-8") as fh:
            while True:
                page = get_rows(data_id, limit=PAGE, offset=n)
                for row in page:
                    fh.write(json.dumps(row.get("payload", row) if isinstance(row, dict) else row) + "\n")
                n += len(page)
                if len(page) < PAGE:
                    break
        os.replace(tmp, path)
        meta = {
            "id": data_id,
            "version": remote.get("version"),
            "n_rows": n,
            "format": remote.get("format"),
            "transform": remote.get("transform"),
            "complete": True,
        }
        atomic_write_json(manifest, meta)
        return MaterializedDataset(path, meta["format"], meta["transform"], n, False)

    def dataset_id_for_name(self, name: str) -> str:
        return self._newest("dataset", self.store.list_datasets(), name)

    def benchmark_id_for_name(self, name: str) -> str:
        return self._newest("benchmark", self.store.list_benchmarks(), name)

    @staticmethod
    def _newest(kind: str, records: list[dict[str, Any]], name: str) -> str:
        matches = [r for r in records if r.get("name") == name]
        if not matches:
            known = sorted({str(r.get("name")) for r in records})
            raise FileNotFoundError(f"no {kind} named '{name}' in this project (known: {', '.join(known) or 'none'})")
        return str(max(matches, key=lambda r: int(r.get("version") or 1))["id"])

    def script_path(self, experiment_id: str) -> Path:
        return self.root / "scripts" / f"exp_{experiment_id}.py"

    def outputs_dir(self, run_id: str) -> Path:
        path = self.root / "outputs" / run_id
        path.mkdir(parents=True, exist_ok=True)
        return path


def read_jsonl_rows(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]
