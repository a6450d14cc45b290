"""``evsys benchmark upload``: store a harbor benchmark folder as a new version (or find it unchanged)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.spec.data_types import to_dict


@dataclass
class UploadResult:
    benchmark_id: str
    name: str
    version: int
    content_hash: str
    status: str  # "created" | "updated" | "unchanged"
    n_tasks: int


def upload_benchmark(store: Any, path: str | os.PathLike[str]) -> UploadResult:
    bench = Benchmark.from_dir(path)
    content_hash = hashlib.sha256((Path(path) / "tasks.jsonl").read_bytes()).hexdigest()
    try:
        same_name = [b for b in store.list_benchmarks() if b.get("name") == bench.name]
    except Exception:  # a store that cannot list is treated as holding nothing yet
        same_name = []
    newest = max(same_name, key=lambda b: int(b.get("version") or 1), default=None)
    if newest is not None and (newest.get("metadata") or {}).get("content_hash") == content_hash:
        return UploadResult(
            str(newest["id"]), bench.name, int(newest["version"]), content_hash, "unchanged", len(bench.tasks)
        )
    version = int(newest["version"]) + 1 if newest is not None else 1
    record = store.create_benchmark(
        name=bench.name,
        format="harbor",
        version=version,
        source_kind="harbor_jsonl",
        metadata={**bench.metadata, "content_hash": content_hash},
    )
    if bench.tasks:
        store.add_benchmark_rows(record["id"], [to_dict(t) for t in bench.tasks])
    status = "updated" if newest is not None else "created"
    return UploadResult(str(record["id"]), bench.name, version, content_hash, status, len(bench.tasks))


def as_dict(result: UploadResult) -> dict[str, Any]:
    return dataclasses.asdict(result)
