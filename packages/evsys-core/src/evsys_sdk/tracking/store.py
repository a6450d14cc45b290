"""The tracking store: one protocol, and ``LocalStore``, the embedded SQLite default.

Every experiment, group, run, step metric, eval, checkpoint and prediction is recorded; datasets and
benchmarks are served by id and name (newest version). The dashboard server reads the same schema.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic_core import to_json

DEFAULT_WORKSPACE = ".evsys"


def workspace_root(root: str | os.PathLike[str] | None = None) -> Path:
    """``root``, else ``$EVSYS_WORKSPACE``, else ``.evsys`` of the project the current directory is in
    (the nearest folder upwards holding a ``pyproject.toml``, as for a config's paths), else ``./.evsys``:
    ``evsys run`` and ``evsys runs`` anywhere in a project share one workspace."""
    explicit = root or os.environ.get("EVSYS_WORKSPACE")
    if explicit:
        return Path(explicit).expanduser()
    from evsys_sdk.spec.paths import enclosing_project

    project = enclosing_project(Path.cwd())
    return project / DEFAULT_WORKSPACE if project is not None else Path(DEFAULT_WORKSPACE)


@runtime_checkable
class TrackingStore(Protocol):
    """Where experiments are recorded. Every call is bookkeeping: callers treat failures as warnings."""

    def create_experiment(self, *, experiment_name: str, **fields: Any) -> dict[str, Any]: ...
    def update_experiment(self, experiment_id: str, **patch: Any) -> dict[str, Any]: ...
    def create_group(self, experiment_id: str, name: str) -> dict[str, Any]: ...
    def create_run(self, *, experiment_id: str, **fields: Any) -> dict[str, Any]: ...
    def update_run(self, run_id: str, **patch: Any) -> dict[str, Any]: ...
    def log_metrics(self, *, run_id: str, step: int, metrics: dict[str, float], split: str = "train") -> None: ...
    def create_eval(self, *, run_id: str, metrics: dict[str, float], **fields: Any) -> dict[str, Any]: ...
    def add_checkpoint(self, run_id: str, *, uri: str, **fields: Any) -> dict[str, Any]: ...
    def log_predictions(self, run_id: str, predictions: list[dict[str, Any]]) -> dict[str, Any]: ...
    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None: ...
    def list_datasets(self) -> list[dict[str, Any]]: ...
    def get_dataset_rows(self, dataset_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def get_benchmark(self, benchmark_id: str) -> dict[str, Any] | None: ...
    def list_benchmarks(self) -> list[dict[str, Any]]: ...
    def get_benchmark_rows(self, benchmark_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]: ...
    def create_benchmark(self, *, name: str, **fields: Any) -> dict[str, Any]: ...
    def add_benchmark_rows(self, benchmark_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'running',
    hypothesis TEXT, tags TEXT, conclusion TEXT, best_score REAL, config TEXT, extra TEXT,
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS groups (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id), name TEXT NOT NULL,
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL REFERENCES experiments(id), group_id TEXT,
    name TEXT, recipe_kind TEXT, seed INTEGER, status TEXT NOT NULL, error_message TEXT,
    run_config TEXT, metrics TEXT, extra TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS step_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, split TEXT NOT NULL,
    metrics TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS step_metrics_run ON step_metrics(run_id, split, step);
CREATE TABLE IF NOT EXISTS evals (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), name TEXT, benchmark_id TEXT,
    step INTEGER, metrics TEXT NOT NULL, breakdowns TEXT, tags TEXT, extra TEXT, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(id), uri TEXT NOT NULL, label TEXT,
    step INTEGER, is_final INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS predictions (
    run_id TEXT NOT NULL REFERENCES runs(id), payload TEXT NOT NULL, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL,
    format TEXT, source_kind TEXT, metadata TEXT, n_rows INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dataset_rows (
    dataset_id TEXT NOT NULL REFERENCES datasets(id), idx INTEGER NOT NULL, payload TEXT NOT NULL,
    PRIMARY KEY (dataset_id, idx));
"""

JSON_COLUMNS = {"tags", "config", "extra", "run_config", "metrics", "breakdowns", "metadata", "payload"}


def json_text(value: Any) -> str:
    """Compact JSON for storage and the wire; what it cannot serialize becomes its ``str()`` (like
    ``json.dumps(default=str)``, NaN and Infinity included). pydantic-core's serializer: a tenth of
    ``json.dumps``'s time, which counts on the step-metric paths (100,000s of rows)."""
    return to_json(value, fallback=str).decode()


def dump_json(value: Any) -> str | None:
    """A JSON column's text (None stays NULL)."""
    return None if value is None else json_text(value)


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for (name, *_), value in zip(cursor.description, values, strict=True):
        out[name] = json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
    return out


class LocalStore:
    """SQLite in WAL mode: several processes may record into one workspace at once."""

    name = "local"

    def __init__(self, path: str | os.PathLike[str] | None = None):
        self.path = Path(path) if path is not None else workspace_root() / "evsys.db"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._in_transaction = False  # transaction() is open on this connection (nested ones join it)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = _row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def extend_schema(self, sql: str) -> None:
        """Add tables of one's own beside the store's (the dashboard server does)."""
        with self._lock:
            self._db.executescript(sql)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: writers from other processes wait, never interleave);
        one opened inside another joins it, so several writes can commit together.

        Interrupt-safe: a KeyboardInterrupt may land anywhere, also just after BEGIN returns (it waits for
        other writers, so Ctrl-C often arrives then) or after COMMIT; whatever is still open is rolled
        back before the exception goes on, so the next write (the cancel path's) starts afresh."""
        with self._lock:
            if self._in_transaction:
                yield self._db
                return
            try:
                self._in_transaction = True
                if self._db.in_transaction:  # left open by a write interrupted outside this method
                    self._db.execute("ROLLBACK")
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            finally:
                self._in_transaction = False

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            rows: list[dict[str, Any]] = self._db.execute(sql, tuple(args)).fetchall()
            return rows

    def one(self, sql: str, args: Iterable[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, args)
        return rows[0] if rows else None

    def _update(self, table: str, row_id: str, patch: dict[str, Any], columns: set[str]) -> dict[str, Any]:
        known = {k: v for k, v in patch.items() if k in columns}
        extra = {k: v for k, v in patch.items() if k not in columns}
        with self.transaction() as db:
            if extra:
                old = db.execute(f"SELECT extra FROM {table} WHERE id = ?", (row_id,)).fetchone()
                known["extra"] = {**((old or {}).get("extra") or {}), **extra}
            sets = ", ".join(f"{k} = ?" for k in known)
            values = [(dump_json(v) if k in JSON_COLUMNS else v) for k, v in known.items()]
            db.execute(f"UPDATE {table} SET {sets}, updated_at = ? WHERE id = ?", (*values, time.time(), row_id))
        return {"id": row_id, **patch}

    # experiments, groups, runs

    def create_experiment(self, *, experiment_name: str, **fields: Any) -> dict[str, Any]:
        eid, now = str(uuid.uuid4()), time.time()
        extra = {k: v for k, v in fields.items() if k not in ("hypothesis", "tags", "config") and v is not None}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO experiments (id, name, hypothesis, tags, config, extra, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    eid,
                    experiment_name,
                    fields.get("hypothesis"),
                    dump_json(fields.get("tags")),
                    dump_json(fields.get("config")),
                    dump_json(extra),
                    now,
                    now,
                ),
            )
        return {"id": eid, "experiment_name": experiment_name, **fields}

    def update_experiment(self, experiment_id: str, **patch: Any) -> dict[str, Any]:
        return self._update(
            "experiments", experiment_id, patch, {"status", "conclusion", "best_score", "hypothesis", "tags"}
        )

    def create_group(self, experiment_id: str, name: str) -> dict[str, Any]:
        gid = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute("INSERT INTO groups VALUES (?, ?, ?, ?)", (gid, experiment_id, name, time.time()))
        return {"id": gid, "experiment_id": experiment_id, "name": name}

    def create_run(self, *, experiment_id: str, **fields: Any) -> dict[str, Any]:
        rid, now = str(uuid.uuid4()), time.time()
        run_config = fields.get("run_config") or {}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (id, experiment_id, group_id, name, recipe_kind, seed, status, run_config,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    experiment_id,
                    fields.get("group_id"),
                    fields.get("name") or run_config.get("name"),
                    fields.get("recipe_kind"),
                    fields.get("seed"),
                    fields.get("status", "pending"),
                    dump_json(run_config),
                    now,
                    now,
                ),
            )
        return {"id": rid, "experiment_id": experiment_id, **fields}

    def update_run(self, run_id: str, **patch: Any) -> dict[str, Any]:
        return self._update("runs", run_id, patch, {"status", "error_message", "metrics", "group_id", "seed"})

    # records of a run

    def log_metrics(self, *, run_id: str, step: int, metrics: dict[str, float], split: str = "train") -> None:
        self.log_metrics_batch(run_id, [(step, split, metrics)])

    def log_metrics_batch(self, run_id: str, rows: list[tuple[int, str, dict[str, float]]]) -> None:
        """Many step rows in one transaction (forwarding a finished run's metrics file)."""
        now = time.time()
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO step_metrics VALUES (?, ?, ?, ?, ?)",
                [(run_id, int(step), split, json_text(m), now) for step, split, m in rows],
            )

    def create_eval(self, *, run_id: str, metrics: dict[str, float], **fields: Any) -> dict[str, Any]:
        vid = str(uuid.uuid4())
        known = ("name", "benchmark_id", "step", "breakdowns", "tags")
        extra = {k: v for k, v in fields.items() if k not in known and v is not None}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vid,
                    run_id,
                    fields.get("name"),
                    fields.get("benchmark_id"),
                    fields.get("step"),
                    dump_json(metrics),
                    dump_json(fields.get("breakdowns")),
                    dump_json(fields.get("tags")),
                    dump_json(extra or None),
                    time.time(),
                ),
            )
        return {"id": vid, "run_id": run_id, "metrics": metrics, **fields}

    def add_checkpoint(self, run_id: str, *, uri: str, **fields: Any) -> dict[str, Any]:
        cid = str(uuid.uuid4())
        with self.transaction() as db:
            db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    run_id,
                    uri,
                    fields.get("label"),
                    fields.get("step"),
                    int(bool(fields.get("is_final"))),
                    time.time(),
                ),
            )
        return {"id": cid, "run_id": run_id, "uri": uri, **fields}

    def log_predictions(self, run_id: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
        if predictions:
            now = time.time()
            with self.transaction() as db:
                db.executemany(
                    "INSERT INTO predictions VALUES (?, ?, ?)",
                    [(run_id, json_text(p), now) for p in predictions],
                )
        return {"ok": True, "inserted": len(predictions)}

    # datasets and benchmarks (one table, told apart by kind)

    def _create_data(self, kind: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        did = str(uuid.uuid4())
        version = fields.get("version") or 1 + max(
            [r["version"] for r in self._list_data(kind) if r["name"] == name], default=0
        )
        with self.transaction() as db:
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    did,
                    kind,
                    name,
                    int(version),
                    fields.get("format"),
                    fields.get("source_kind"),
                    dump_json(fields.get("metadata") or {}),
                    time.time(),
                ),
            )
        return {"id": did, "name": name, "version": int(version), **{k: v for k, v in fields.items() if k != "version"}}

    def _add_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        with self.transaction() as db:
            start = db.execute("SELECT n_rows FROM datasets WHERE id = ?", (dataset_id,)).fetchone()
            if start is None:
                raise KeyError(f"no dataset or benchmark with id {dataset_id}")
            n = int(start["n_rows"])
            db.executemany(
                "INSERT INTO dataset_rows VALUES (?, ?, ?)",
                [(dataset_id, n + i, json_text(r)) for i, r in enumerate(rows)],
            )
            db.execute("UPDATE datasets SET n_rows = ? WHERE id = ?", (n + len(rows), dataset_id))
        return {"ok": True, "inserted": len(rows)}

    def _list_data(self, kind: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM datasets WHERE kind = ? ORDER BY name, version", (kind,))

    def _get_data(self, kind: str, data_id: str) -> dict[str, Any] | None:
        return self.one("SELECT * FROM datasets WHERE kind = ? AND id = ?", (kind, data_id))

    def _rows(self, data_id: str, limit: int, offset: int) -> list[dict[str, Any]]:
        rows = self.query(
            "SELECT payload FROM dataset_rows WHERE dataset_id = ? ORDER BY idx LIMIT ? OFFSET ?",
            (data_id, limit, offset),
        )
        return [r["payload"] for r in rows]

    def create_dataset(self, *, name: str, **fields: Any) -> dict[str, Any]:
        return self._create_data("dataset", name, fields)

    def add_dataset_rows(self, dataset_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._add_rows(dataset_id, rows)

    def get_dataset(self, dataset_id: str) -> dict[str, Any] | None:
        return self._get_data("dataset", dataset_id)

    def list_datasets(self) -> list[dict[str, Any]]:
        return self._list_data("dataset")

    def get_dataset_rows(self, dataset_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._rows(dataset_id, limit, offset)

    def create_benchmark(self, *, name: str, **fields: Any) -> dict[str, Any]:
        return self._create_data("benchmark", name, fields)

    def add_benchmark_rows(self, benchmark_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        return self._add_rows(benchmark_id, rows)

    def get_benchmark(self, benchmark_id: str) -> dict[str, Any] | None:
        return self._get_data("benchmark", benchmark_id)

    def list_benchmarks(self) -> list[dict[str, Any]]:
        return self._list_data("benchmark")

    def get_benchmark_rows(self, benchmark_id: str, *, limit: int, offset: int) -> list[dict[str, Any]]:
        return self._rows(benchmark_id, limit, offset)

    # reading back (evsys runs)

    def list_experiments(self) -> list[dict[str, Any]]:
        return self.query(
            "SELECT e.*, (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id"
            " AND COALESCE(r.recipe_kind, '') != 'baseline') AS n_runs"
            " FROM experiments e ORDER BY e.created_at DESC"
        )

    def find_experiment(self, name_or_id: str) -> dict[str, Any] | None:
        """By id, else the newest experiment with that name."""
        return self.one("SELECT * FROM experiments WHERE id = ?", (name_or_id,)) or self.one(
            "SELECT * FROM experiments WHERE name = ? ORDER BY created_at DESC LIMIT 1", (name_or_id,)
        )

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        return self.query(
            "SELECT r.*, g.name AS group_name FROM runs r LEFT JOIN groups g ON g.id = r.group_id"
            " WHERE r.experiment_id = ? ORDER BY r.created_at",
            (experiment_id,),
        )

    def experiment_groups(self, experiment_id: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM groups WHERE experiment_id = ? ORDER BY created_at, rowid", (experiment_id,))

    def run_evals(self, run_id: str) -> list[dict[str, Any]]:
        return self.query("SELECT * FROM evals WHERE run_id = ? ORDER BY created_at", (run_id,))

    def step_metrics(self, run_id: str, split: str | None = None) -> list[dict[str, Any]]:
        if split is None:
            return self.query("SELECT * FROM step_metrics WHERE run_id = ? ORDER BY step", (run_id,))
        return self.query("SELECT * FROM step_metrics WHERE run_id = ? AND split = ? ORDER BY step", (run_id, split))

    def close(self) -> None:
        with self._lock:
            self._db.close()
