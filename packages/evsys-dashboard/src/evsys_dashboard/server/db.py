"""The server's database: core's ``LocalStore`` schema, plus projects, hashed API keys and replay ids.

The tables of ``evsys_sdk.store.SCHEMA`` are shared with ``evsys run`` (so the dashboard shows what was
recorded locally); the server adds only its own ``dash_*`` tables beside them:

- ``dash_projects`` / ``dash_api_keys``: keys are stored as SHA-256 digests, each scoped to one project;
- ``dash_experiment_projects``: which project an experiment written through the API belongs to (runs,
  groups, evals... belong to their experiment's project);
- ``dash_seen``: the client ids of step rows and predictions already recorded (idempotent replay).

Experiments, runs, groups, evals and checkpoints are keyed by the client's own id, so a second create
with a known id answers "already there" instead of creating a duplicate.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import time
from pathlib import Path
from typing import Any

from evsys_sdk.store import JSON_COLUMNS, LocalStore, dump_json, json_text

DASH_SCHEMA = """
CREATE TABLE IF NOT EXISTS dash_projects (id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dash_api_keys (
    key_hash TEXT PRIMARY KEY, key_prefix TEXT NOT NULL, project_id TEXT NOT NULL REFERENCES dash_projects(id),
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dash_experiment_projects (
    experiment_id TEXT PRIMARY KEY REFERENCES experiments(id), project_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dash_seen (uid TEXT PRIMARY KEY) WITHOUT ROWID;
"""

EXPERIMENT_COLUMNS = {"status", "conclusion", "best_score", "hypothesis", "tags"}
RUN_COLUMNS = {"status", "error_message", "metrics", "group_id", "seed", "name", "recipe_kind"}


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class ServerDB:
    """One SQLite file (WAL) shared with core's LocalStore; safe to use from the server's worker threads."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.local = LocalStore(self.path)  # core's schema and connection; serves reads, datasets and benchmarks
        self.local.extend_schema(DASH_SCHEMA)

    def close(self) -> None:
        self.local.close()

    # ------------------------------------------------------------- projects, keys

    def create_key(self, project_id: str) -> str:
        """A new API key for ``project_id`` (created if needed); only its digest is stored."""
        key = "evsys_" + secrets.token_urlsafe(32)
        now = time.time()
        with self.local.transaction() as db:
            db.execute("INSERT OR IGNORE INTO dash_projects VALUES (?, ?)", (project_id, now))
            db.execute("INSERT INTO dash_api_keys VALUES (?, ?, ?, ?)", (hash_key(key), key[:12], project_id, now))
        return key

    def project_for_key(self, key: str) -> str | None:
        row = self.local.one("SELECT project_id FROM dash_api_keys WHERE key_hash = ?", (hash_key(key),))
        return None if row is None else str(row["project_id"])

    # ------------------------------------------------------------- ownership

    def _experiment_project(self, db: sqlite3.Connection, experiment_id: str) -> str | None:
        row = db.execute(
            "SELECT e.id, p.project_id FROM experiments e LEFT JOIN dash_experiment_projects p"
            " ON p.experiment_id = e.id WHERE e.id = ?",
            (experiment_id,),
        ).fetchone()
        if row is None:
            raise NotFound(f"experiment {experiment_id} not found")
        return row["project_id"]  # type: ignore[no-any-return]

    def _own_experiment(self, db: sqlite3.Connection, project: str, experiment_id: str) -> None:
        if self._experiment_project(db, experiment_id) != project:
            raise NotFound(f"experiment {experiment_id} not found in project {project}")

    def _own_run(self, db: sqlite3.Connection, project: str, run_id: str) -> None:
        row = db.execute(
            "SELECT p.project_id FROM runs r LEFT JOIN dash_experiment_projects p ON p.experiment_id = r.experiment_id"
            " WHERE r.id = ?",
            (run_id,),
        ).fetchone()
        if row is None or row["project_id"] != project:
            raise NotFound(f"run {run_id} not found in project {project}")

    # ------------------------------------------------------------- experiments, groups, runs

    def create_experiment(self, project: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        eid = body.pop("id", None) or secrets.token_hex(16)
        name = body.pop("experiment_name")
        body.pop("project_id", None)
        now = time.time()
        with self.local.transaction() as db:
            exists = db.execute("SELECT id FROM experiments WHERE id = ?", (eid,)).fetchone()
            if exists is not None:
                if self._experiment_project(db, eid) != project:
                    raise Conflict(f"experiment id {eid} is taken")
                return {"id": eid, "experiment_name": name}, False
            extra = {k: v for k, v in body.items() if k not in ("hypothesis", "tags", "config", "status")}
            db.execute(
                "INSERT INTO experiments (id, name, status, hypothesis, tags, config, extra, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    eid,
                    name,
                    body.get("status") or "running",
                    body.get("hypothesis"),
                    dump_json(body.get("tags")),
                    dump_json(body.get("config")),
                    dump_json(extra or None),
                    now,
                    now,
                ),
            )
            db.execute("INSERT INTO dash_experiment_projects VALUES (?, ?)", (eid, project))
        return {"id": eid, "experiment_name": name, "project_id": project}, True

    def _update(self, db: sqlite3.Connection, table: str, row_id: str, patch: dict[str, Any], cols: set[str]) -> None:
        known = {k: v for k, v in patch.items() if k in cols}
        extra = {k: v for k, v in patch.items() if k not in cols and k != "id"}
        if extra:
            old = db.execute(f"SELECT extra FROM {table} WHERE id = ?", (row_id,)).fetchone()
            known["extra"] = {**((old or {}).get("extra") or {}), **extra}
        sets = "".join(f"{k} = ?, " for k in known)
        values = [(dump_json(v) if k in JSON_COLUMNS else v) for k, v in known.items()]
        db.execute(f"UPDATE {table} SET {sets}updated_at = ? WHERE id = ?", (*values, time.time(), row_id))

    def update_experiment(self, project: str, experiment_id: str, patch: dict[str, Any]) -> None:
        with self.local.transaction() as db:
            self._own_experiment(db, project, experiment_id)
            self._update(db, "experiments", experiment_id, patch, EXPERIMENT_COLUMNS)

    def create_group(self, project: str, experiment_id: str, group_id: str | None, name: str) -> tuple[str, bool]:
        gid = group_id or secrets.token_hex(16)
        with self.local.transaction() as db:
            self._own_experiment(db, project, experiment_id)
            row = db.execute("SELECT experiment_id FROM groups WHERE id = ?", (gid,)).fetchone()
            if row is not None:
                if row["experiment_id"] != experiment_id:
                    raise Conflict(f"group id {gid} is taken")
                return gid, False
            db.execute("INSERT INTO groups VALUES (?, ?, ?, ?)", (gid, experiment_id, name, time.time()))
        return gid, True

    def create_run(self, project: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        rid = body.pop("id", None) or secrets.token_hex(16)
        experiment_id = body.pop("experiment_id")
        run_config = body.get("run_config") or {}
        now = time.time()
        with self.local.transaction() as db:
            self._own_experiment(db, project, experiment_id)
            row = db.execute("SELECT experiment_id FROM runs WHERE id = ?", (rid,)).fetchone()
            if row is not None:
                if row["experiment_id"] != experiment_id:
                    raise Conflict(f"run id {rid} is taken")
                return {"id": rid, "experiment_id": experiment_id}, False
            known = ("group_id", "name", "recipe_kind", "seed", "status", "run_config")
            extra = {k: v for k, v in body.items() if k not in known}
            db.execute(
                "INSERT INTO runs (id, experiment_id, group_id, name, recipe_kind, seed, status, run_config, extra,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    experiment_id,
                    body.get("group_id"),
                    body.get("name") or (run_config.get("name") if isinstance(run_config.get("name"), str) else None),
                    body.get("recipe_kind"),
                    body.get("seed"),
                    body.get("status") or "pending",
                    dump_json(run_config),
                    dump_json(extra or None),
                    now,
                    now,
                ),
            )
        return {"id": rid, "experiment_id": experiment_id, "status": body.get("status") or "pending"}, True

    def update_run(self, project: str, run_id: str, patch: dict[str, Any]) -> None:
        with self.local.transaction() as db:
            self._own_run(db, project, run_id)
            self._update(db, "runs", run_id, patch, RUN_COLUMNS)

    # ------------------------------------------------------------- records of a run

    @staticmethod
    def _fresh(db: sqlite3.Connection, run_id: str, uids: list[str | None]) -> list[bool]:
        """Which of ``uids`` this run has not recorded yet (None: no id, always fresh); marks them seen."""
        keys = [None if u is None else f"{run_id}/{u}" for u in uids]
        distinct = list(dict.fromkeys(k for k in keys if k is not None))
        fresh: list[bool] = []
        db.execute("SAVEPOINT seen")
        before = db.total_changes
        db.executemany("INSERT OR IGNORE INTO dash_seen VALUES (?)", [(k,) for k in distinct])
        if db.total_changes - before == len(distinct):  # the common case: none seen before, one statement
            db.execute("RELEASE seen")
            marked: set[str] = set()
            for k in keys:
                fresh.append(k is None or k not in marked)
                if k is not None:
                    marked.add(k)
            return fresh
        db.execute("ROLLBACK TO seen")
        db.execute("RELEASE seen")
        seen: set[str] = set()
        for start in range(0, len(distinct), 500):
            chunk = distinct[start : start + 500]
            cursor = db.execute(f"SELECT uid FROM dash_seen WHERE uid IN ({','.join('?' * len(chunk))})", chunk)
            seen.update(row["uid"] for row in cursor.fetchall())
        new: list[tuple[str]] = []
        for k in keys:
            if k is None:
                fresh.append(True)
            elif k in seen:
                fresh.append(False)
            else:
                fresh.append(True)
                seen.add(k)  # a uid repeated inside one batch counts once
                new.append((k,))
        db.executemany("INSERT INTO dash_seen VALUES (?)", new)
        return fresh

    def add_step_rows(
        self, project: str, run_id: str, rows: list[tuple[int, str, dict[str, float], str | None, float | None]]
    ) -> int:
        now = time.time()
        with self.local.transaction() as db:
            self._own_run(db, project, run_id)
            fresh = self._fresh(db, run_id, [r[3] for r in rows])
            values = [
                (run_id, step, split, json_text(metrics), now if ts is None else ts)
                for (step, split, metrics, _, ts), new in zip(rows, fresh, strict=True)
                if new
            ]
            db.executemany("INSERT INTO step_metrics VALUES (?, ?, ?, ?, ?)", values)
        return len(values)

    def create_eval(self, project: str, run_id: str, body: dict[str, Any]) -> tuple[str, bool]:
        vid = body.pop("id", None) or secrets.token_hex(16)
        with self.local.transaction() as db:
            self._own_run(db, project, run_id)
            row = db.execute("SELECT run_id FROM evals WHERE id = ?", (vid,)).fetchone()
            if row is not None:
                if row["run_id"] != run_id:
                    raise Conflict(f"eval id {vid} is taken")
                return vid, False
            known = ("name", "benchmark_id", "step", "breakdowns", "tags", "metrics")
            extra = {k: v for k, v in body.items() if k not in known}
            db.execute(
                "INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vid,
                    run_id,
                    body.get("name"),
                    body.get("benchmark_id"),
                    body.get("step"),
                    dump_json(body["metrics"]),
                    dump_json(body.get("breakdowns")),
                    dump_json(body.get("tags")),
                    dump_json(extra or None),
                    time.time(),
                ),
            )
        return vid, True

    def add_checkpoint(self, project: str, run_id: str, body: dict[str, Any]) -> tuple[str, bool]:
        cid = body.get("id") or secrets.token_hex(16)
        with self.local.transaction() as db:
            self._own_run(db, project, run_id)
            row = db.execute("SELECT run_id FROM checkpoints WHERE id = ?", (cid,)).fetchone()
            if row is not None:
                if row["run_id"] != run_id:
                    raise Conflict(f"checkpoint id {cid} is taken")
                return cid, False
            db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    cid,
                    run_id,
                    body["uri"],
                    body.get("label"),
                    body.get("step"),
                    int(bool(body.get("is_final"))),
                    time.time(),
                ),
            )
        return cid, True

    def add_predictions(
        self, project: str, run_id: str, predictions: list[dict[str, Any]], uids: list[str | None] | None
    ) -> int:
        now = time.time()
        keys: list[str | None] = list(uids) if uids is not None else [None] * len(predictions)
        with self.local.transaction() as db:
            self._own_run(db, project, run_id)
            values = [
                (run_id, json_text(p), now)
                for p, new in zip(predictions, self._fresh(db, run_id, keys), strict=True)
                if new
            ]
            db.executemany("INSERT INTO predictions VALUES (?, ?, ?)", values)
        return len(values)

    # ------------------------------------------------------------- reads for the UI

    def experiments(self) -> list[dict[str, Any]]:
        rows = self.local.list_experiments()
        owners = {
            r["experiment_id"]: r["project_id"] for r in self.local.query("SELECT * FROM dash_experiment_projects")
        }
        for r in rows:
            r["project_id"] = owners.get(r["id"])
        return rows

    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        return self.local.one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self.local.one(
            "SELECT r.*, g.name AS group_name, e.name AS experiment_name FROM runs r"
            " LEFT JOIN groups g ON g.id = r.group_id LEFT JOIN experiments e ON e.id = r.experiment_id"
            " WHERE r.id = ?",
            (run_id,),
        )

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return self.local.query("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY created_at, rowid", (run_id,))

    def predictions(self, run_id: str, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        rows = self.local.query(
            "SELECT payload FROM predictions WHERE run_id = ? ORDER BY rowid LIMIT ?", (run_id, limit)
        )
        total = self.local.one("SELECT COUNT(*) AS n FROM predictions WHERE run_id = ?", (run_id,))
        return [r["payload"] for r in rows], int((total or {}).get("n") or 0)

    def step_series(self, run_ids: list[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """run id -> metric name (``val/`` prefixed for the val split) -> [(step, value)] in step order."""
        out: dict[str, dict[str, list[tuple[int, float]]]] = {rid: {} for rid in run_ids}
        for rid in run_ids:
            raw = self.local.query(
                "SELECT step, split, metrics FROM step_metrics WHERE run_id = ? ORDER BY step, rowid", (rid,)
            )
            series = out[rid]
            for row in raw:
                step, split, metrics = row["step"], row["split"], row["metrics"]
                if not isinstance(metrics, dict):
                    continue
                for key, value in metrics.items():
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        name = key if split == "train" or key.startswith(f"{split}/") else f"{split}/{key}"
                        series.setdefault(name, []).append((int(step), float(value)))
        return out
