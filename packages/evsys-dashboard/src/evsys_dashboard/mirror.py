"""The local mirror: every write of a DashboardClient, replayable by ``evsys dashboard sync``.

Layout under ``log_dir``::

    experiments/<experiment_id>/experiment.json   merged create + updates (id, _created_at, _updated_at)
    experiments/<experiment_id>/groups.jsonl      replicate groups
    generations/<run_id>/generation.json          merged create + updates of a run
    generations/<run_id>/metrics.jsonl            step rows {"step", "split", "metrics", "uid", "ts"}
    generations/<run_id>/evals.jsonl              eval bodies (with their client id)
    generations/<run_id>/checkpoints.jsonl        checkpoint bodies (with their client id)
    generations/<run_id>/predictions.jsonl        one prediction a line, with its "_uid"

Every record carries a client-generated id (``id``, ``uid`` or ``_uid``), so replaying it twice creates nothing new.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evsys_sdk.base.io import atomic_write_json


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)


class Mirror:
    """Thread-safe writer of the mirror layout."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def experiment_dir(self, experiment_id: str) -> Path:
        return self.root / "experiments" / _safe_id(experiment_id)

    def run_dir(self, run_id: str) -> Path:
        return self.root / "generations" / _safe_id(run_id)

    def _merge(self, path: Path, patch: dict[str, Any], *, create: bool) -> dict[str, Any]:
        with self._lock:
            try:
                record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = {}
            record.update(patch)
            if create:
                record.setdefault("_created_at", time.time())
            else:
                record["_updated_at"] = time.time()
            atomic_write_json(path, record)
            return record

    def write_experiment(self, record: dict[str, Any]) -> None:
        self._merge(self.experiment_dir(record["id"]) / "experiment.json", record, create=True)

    def update_experiment(self, experiment_id: str, patch: dict[str, Any]) -> None:
        self._merge(
            self.experiment_dir(experiment_id) / "experiment.json", {"id": experiment_id, **patch}, create=False
        )

    def write_run(self, record: dict[str, Any]) -> None:
        self._merge(self.run_dir(record["id"]) / "generation.json", record, create=True)

    def update_run(self, run_id: str, patch: dict[str, Any]) -> None:
        self._merge(self.run_dir(run_id) / "generation.json", {"id": run_id, **patch}, create=False)

    def append(self, directory: Path, name: str, records: Iterable[dict[str, Any]]) -> None:
        self.append_lines(directory, name, [_dumps(r) for r in records])

    def append_lines(self, directory: Path, name: str, lines: list[str]) -> None:
        """Append JSON lines (already serialized) in one write."""
        text = "\n".join(lines) + "\n" if lines else ""
        if not text:
            return
        with self._lock:
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / name, "a", encoding="utf-8") as fh:
                fh.write(text)

    def add_group(self, record: dict[str, Any]) -> None:
        self.append(self.experiment_dir(record["experiment_id"]), "groups.jsonl", [record])

    def add_run_records(self, run_id: str, name: str, records: Iterable[dict[str, Any]]) -> None:
        self.append(self.run_dir(run_id), name, records)


def _safe_id(value: str) -> str:
    """Ids become directory names: refuse anything that could leave the mirror."""
    text = str(value)
    if not text or text in (".", "..") or "/" in text or "\\" in text or "\0" in text:
        raise ValueError(f"invalid record id {value!r}")
    return text


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL file; a torn last line (a crash mid-write) and blank lines are skipped."""
    rows: list[dict[str, Any]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return rows
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows
