"""The server's database: core's ``LocalStore`` schema, plus projects, hashed API keys and replay ids.

The tables of ``evsys_sdk.tracking.store.SCHEMA`` are shared with ``evsys run`` (so the dashboard shows what was
recorded locally); the server adds only its own ``dash_*`` tables beside them:

- ``dash_projects`` / ``dash_api_keys``: keys are stored as SHA-256 digests, each scoped to one project,
  with when it was created and last used, an optional expiry, and when it was revoked;
- ``dash_experiment_projects``: which project an experiment written through the API belongs to (runs,
  groups, evals... belong to their experiment's project);
- ``dash_data_projects``: which project a dataset or benchmark written through the API belongs to;
- ``dash_aliases``: a project's own id for a record whose client id another project (or ``evsys run``)
  already holds: the record is stored under a fresh id, and the client keeps using its own;
- ``dash_seen``: the client ids of step rows and predictions already recorded (idempotent replay);
- ``dash_latest_metrics``: each metric's latest point of a run logged through the MLflow routes (the
  value at the highest step, then timestamp: what MLflow shows as a run's metrics);
- ``dash_artifacts``: the files MLflow clients upload to a run (``log_artifact``, ``log_dict``...);
- ``dash_meta``: the schema version, for migrations of existing databases.

Records with no owning project (written by ``evsys run`` into the same file) show in the web UI and are
reached by no API key.

Experiments, runs, groups, evals and checkpoints are keyed by the client's own id, so a second create
with a known id answers "already there" instead of creating a duplicate.

Writes go through core's connection (one writer); the web UI and SDK reads use read-only connections of
their own, one per thread (WAL: readers never wait for the writer, nor hold it up).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from evsys_sdk.tracking.store import JSON_COLUMNS, LocalStore, dump_json, json_text

SCHEMA_VERSION = 2
DASH_SCHEMA = """
CREATE TABLE IF NOT EXISTS dash_projects (id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dash_api_keys (
    key_hash TEXT PRIMARY KEY, key_prefix TEXT NOT NULL, project_id TEXT NOT NULL REFERENCES dash_projects(id),
    created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS dash_experiment_projects (
    experiment_id TEXT PRIMARY KEY REFERENCES experiments(id), project_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dash_data_projects (
    dataset_id TEXT PRIMARY KEY REFERENCES datasets(id), project_id TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS dash_data_projects_project ON dash_data_projects(project_id);
CREATE TABLE IF NOT EXISTS dash_aliases (
    project_id TEXT NOT NULL, kind TEXT NOT NULL, client_id TEXT NOT NULL, stored_id TEXT NOT NULL,
    PRIMARY KEY (project_id, kind, client_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dash_seen (uid TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dash_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS dash_latest_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id), key TEXT NOT NULL, value REAL, step INTEGER NOT NULL,
    ts REAL NOT NULL, PRIMARY KEY (run_id, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dash_artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id), path TEXT NOT NULL, size INTEGER NOT NULL, content BLOB NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (run_id, path));
"""
KEY_COLUMNS = {"last_used_at": "REAL", "expires_at": "REAL", "revoked_at": "REAL"}  # added by schema version 2
LAST_USED_EVERY_S = 60.0  # a key's last use is written at most this often (not a write per request)

EXPERIMENT_COLUMNS = {"status", "conclusion", "best_score", "hypothesis", "tags"}
RUN_COLUMNS = {"status", "error_message", "metrics", "group_id", "seed", "name", "recipe_kind"}
ARM_COLUMNS = (  # what the experiment page shows of each arm: no run_config (its tags: continual stages), no extra
    "r.id, r.experiment_id, r.group_id, r.name, r.recipe_kind, r.seed, r.status, r.error_message, r.metrics,"
    " r.created_at, g.name AS group_name, json_extract(r.run_config, '$.tags') AS tags"
)
CHART_POINTS = 400  # points per chart series, picked in SQL


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    out = {}
    for (name, *_), value in zip(cursor.description, values, strict=True):
        out[name] = json.loads(value) if name in JSON_COLUMNS and isinstance(value, str) else value
    return out


# The owning project of a record, and its parent (experiment or run) for the kinds that have one.
_OWNER = {
    "experiment": "SELECT e.id AS parent, p.project_id FROM experiments e"
    " LEFT JOIN dash_experiment_projects p ON p.experiment_id = e.id WHERE e.id = ?",
    "group": "SELECT g.experiment_id AS parent, p.project_id FROM groups g"
    " LEFT JOIN dash_experiment_projects p ON p.experiment_id = g.experiment_id WHERE g.id = ?",
    "run": "SELECT r.experiment_id AS parent, p.project_id FROM runs r"
    " LEFT JOIN dash_experiment_projects p ON p.experiment_id = r.experiment_id WHERE r.id = ?",
    "eval": "SELECT v.run_id AS parent, p.project_id FROM evals v JOIN runs r ON r.id = v.run_id"
    " LEFT JOIN dash_experiment_projects p ON p.experiment_id = r.experiment_id WHERE v.id = ?",
    "checkpoint": "SELECT c.run_id AS parent, p.project_id FROM checkpoints c JOIN runs r ON r.id = c.run_id"
    " LEFT JOIN dash_experiment_projects p ON p.experiment_id = r.experiment_id WHERE c.id = ?",
}


def _metrics_object(column: str) -> str:
    """SQL for a step row's metrics as JSON SQLite reads: NaN/Infinity (which the store writes, and SQLite
    does not parse) become null (charts skip them anyway); anything else unreadable becomes {}."""
    fixed = f"replace(replace(replace({column}, '-Infinity', 'null'), 'Infinity', 'null'), 'NaN', 'null')"
    return f"CASE WHEN json_valid({column}) THEN {column} WHEN json_valid({fixed}) THEN {fixed} ELSE '{{}}' END"


_NUMBERS = "typeof(j.key) = 'text' AND j.type IN ('integer', 'real')"
# Charts: about CHART_POINTS rows per split, picked by row number on the (run_id, split, step) index, and
# only those rows' JSON read, by SQLite. A page never decodes 100,000s of rows, and never in Python.
_SAMPLED_POINTS = f"""
WITH counts AS (SELECT split, COUNT(*) AS n FROM step_metrics WHERE run_id = :run GROUP BY split),
numbered AS (SELECT rowid AS id, split, ROW_NUMBER() OVER (PARTITION BY split ORDER BY step) AS rn
    FROM step_metrics WHERE run_id = :run),
picked AS (SELECT numbered.id FROM numbered JOIN counts USING (split)
    WHERE (rn - 1) % ((n + :points - 1) / :points) = 0 OR rn = n)
SELECT s.split, j.key AS name, s.step, j.value AS value
FROM picked JOIN step_metrics s ON s.rowid = picked.id, json_each({_metrics_object("s.metrics")}) AS j
WHERE {_NUMBERS} ORDER BY s.split, j.key, s.step
"""
# Every metric a run has (so that one logged on few rows is charted too, though no sampled row holds it)
_METRIC_NAMES = f"""
SELECT DISTINCT s.split, j.key AS name FROM step_metrics s, json_each({_metrics_object("s.metrics")}) AS j
WHERE s.run_id = :run AND {_NUMBERS}
"""
_ONE_METRIC = f"""
SELECT s.step, j.value FROM step_metrics s, json_each({_metrics_object("s.metrics")}) AS j
WHERE s.run_id = :run AND s.split = :split AND j.key = :name AND {_NUMBERS} ORDER BY s.step
"""


class ServerDB:
    """One SQLite file (WAL) shared with core's LocalStore; safe to use from the server's worker threads."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path).expanduser()
        self.local = LocalStore(self.path)  # core's schema and connection: every write goes through it
        self.local.extend_schema(DASH_SCHEMA)
        self._migrate()
        self._readers = threading.local()
        self._reader_list: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()

    def close(self) -> None:
        with self._reader_lock:
            for conn in self._reader_list:
                conn.close()
            self._reader_list.clear()
        self.local.close()

    def _migrate(self) -> None:
        """Bring a database made by an older server up to SCHEMA_VERSION (a no-op on a current one)."""
        with self.local.transaction() as db:
            row = db.execute("SELECT value FROM dash_meta WHERE key = 'schema_version'").fetchone()
            version = int(row["value"]) if row else 1
            if version >= SCHEMA_VERSION:
                return
            have = {r["name"] for r in db.execute("PRAGMA table_info(dash_api_keys)").fetchall()}
            for column, kind in KEY_COLUMNS.items():
                if column not in have:
                    db.execute(f"ALTER TABLE dash_api_keys ADD COLUMN {column} {kind}")
            self._assign_data(db)
            db.execute("INSERT OR REPLACE INTO dash_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @staticmethod
    def _assign_data(db: sqlite3.Connection) -> None:
        """Datasets and benchmarks from before projects owned them: to the project that created them when
        that is known (the only project of the database; else the one project whose evals used it); the
        rest belong to no project (like what ``evsys run`` records): shown in the UI, reached by no key."""
        projects = [r["id"] for r in db.execute("SELECT id FROM dash_projects").fetchall()]
        if len(projects) == 1:
            db.execute("INSERT OR IGNORE INTO dash_data_projects SELECT id, ? FROM datasets", (projects[0],))
            return
        db.execute(
            "INSERT OR IGNORE INTO dash_data_projects SELECT d.id, MIN(p.project_id) FROM datasets d"
            " JOIN evals v ON v.benchmark_id = d.id JOIN runs r ON r.id = v.run_id"
            " JOIN dash_experiment_projects p ON p.experiment_id = r.experiment_id"
            " GROUP BY d.id HAVING COUNT(DISTINCT p.project_id) = 1"
        )

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._readers, "conn", None)
        if conn is None:
            conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro", uri=True, timeout=30, check_same_thread=False
            )
            conn.row_factory = _row
            self._readers.conn = conn
            with self._reader_lock:
                self._reader_list.append(conn)
        return conn

    def read(self, sql: str, args: Any = ()) -> list[dict[str, Any]]:
        """A read on this thread's own read-only connection (never waits for, nor holds up, a write)."""
        rows: list[dict[str, Any]] = self._reader().execute(sql, args).fetchall()
        return rows

    def read_one(self, sql: str, args: Any = ()) -> dict[str, Any] | None:
        rows = self.read(sql, args)
        return rows[0] if rows else None

    # ------------------------------------------------------------- projects, keys

    def create_key(self, project_id: str, expires_at: float | None = None) -> str:
        """A new API key for ``project_id`` (created if needed); only its digest is stored."""
        key = "evsys_" + secrets.token_urlsafe(32)
        now = time.time()
        with self.local.transaction() as db:
            db.execute("INSERT OR IGNORE INTO dash_projects VALUES (?, ?)", (project_id, now))
            db.execute(
                "INSERT INTO dash_api_keys (key_hash, key_prefix, project_id, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (hash_key(key), key[:12], project_id, now, expires_at),
            )
        return key

    def check_key(self, key: str) -> tuple[str | None, str, bool]:
        """(project, "", due) for a usable key, else (None, why it is refused, False); ``due``: its last use
        should be recorded (``touch_key``)."""
        row = self.read_one(
            "SELECT project_id, expires_at, revoked_at, last_used_at FROM dash_api_keys WHERE key_hash = ?",
            (hash_key(key),),
        )
        if row is None:
            return None, "invalid API key", False
        now = time.time()
        if row["revoked_at"] is not None:
            return None, "API key revoked (`evsys dashboard create-key` makes a new one)", False
        if row["expires_at"] is not None and row["expires_at"] <= now:
            return None, "API key expired (`evsys dashboard create-key` makes a new one)", False
        due = row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_EVERY_S
        return str(row["project_id"]), "", due

    def touch_key(self, key: str) -> None:
        with self.local.transaction() as db:
            db.execute("UPDATE dash_api_keys SET last_used_at = ? WHERE key_hash = ?", (time.time(), hash_key(key)))

    def list_keys(self) -> list[dict[str, Any]]:
        return self.local.query(
            "SELECT key_prefix, project_id, created_at, last_used_at, expires_at, revoked_at FROM dash_api_keys"
            " ORDER BY project_id, created_at"
        )

    def revoke_key(self, key_or_prefix: str) -> dict[str, Any]:
        """Revoke the key (or the one key whose prefix this is); LookupError naming what matched otherwise."""
        with self.local.transaction() as db:
            rows = db.execute("SELECT * FROM dash_api_keys WHERE key_hash = ?", (hash_key(key_or_prefix),)).fetchall()
            if not rows and len(key_or_prefix) <= 12:
                rows = db.execute(
                    "SELECT * FROM dash_api_keys WHERE substr(key_prefix, 1, ?) = ?",
                    (len(key_or_prefix), key_or_prefix),
                ).fetchall()
            if len(rows) != 1:
                if not rows:
                    raise LookupError(f"no API key matches {key_or_prefix!r} (`evsys dashboard list-keys` shows them)")
                shown = ", ".join(f"{r['key_prefix']} ({r['project_id']})" for r in rows)
                raise LookupError(f"{len(rows)} API keys match {key_or_prefix!r}: {shown}; give more of the key")
            row = rows[0]
            if row["revoked_at"] is None:
                row["revoked_at"] = time.time()
                db.execute(
                    "UPDATE dash_api_keys SET revoked_at = ? WHERE key_hash = ?", (row["revoked_at"], row["key_hash"])
                )
            return {k: v for k, v in row.items() if k != "key_hash"}

    # ------------------------------------------------------------- ownership and ids

    @staticmethod
    def _stored_id(db: sqlite3.Connection, project: str, kind: str, client_id: str) -> str:
        row = db.execute(
            "SELECT stored_id FROM dash_aliases WHERE project_id = ? AND kind = ? AND client_id = ?",
            (project, kind, client_id),
        ).fetchone()
        return client_id if row is None else str(row["stored_id"])

    def own(self, db: sqlite3.Connection, project: str, kind: str, client_id: str) -> tuple[str, str]:
        """(stored id, parent's stored id) of this project's record; NotFound for another project's."""
        sid = self._stored_id(db, project, kind, client_id)
        row = db.execute(_OWNER[kind], (sid,)).fetchone()
        if row is None or row["project_id"] != project:
            raise NotFound(f"{kind} {client_id} not found in project {project}")
        return sid, str(row["parent"])

    def owned(self, project: str, kind: str, client_id: str) -> str:
        """The stored id of this project's record (NotFound for another's), read on a read connection."""
        return self.own(self._reader(), project, kind, client_id)[0]

    def _claim(
        self, db: sqlite3.Connection, project: str, kind: str, client_id: str, parent: str | None
    ) -> tuple[str, bool]:
        """(stored id, new?) for creating a ``kind`` record under the client's id in ``parent``.

        A record of this project with that id is "already there" (a replay). One of another project, or
        recorded by ``evsys run``, is never revealed: this project's record is stored under a fresh id,
        which the client's id names from then on (``dash_aliases``)."""
        sid = self._stored_id(db, project, kind, client_id)
        row = db.execute(_OWNER[kind], (sid,)).fetchone()
        if row is None:
            return sid, True
        if row["project_id"] == project:
            if parent is not None and row["parent"] != parent:
                raise Conflict(f"{kind} id {client_id} is taken by another record of project {project}")
            return sid, False
        sid = secrets.token_hex(16)
        db.execute("INSERT INTO dash_aliases VALUES (?, ?, ?, ?)", (project, kind, client_id, sid))
        return sid, True

    def _group_in(self, db: sqlite3.Connection, project: str, group_id: str | None, experiment_sid: str) -> str | None:
        """The stored id of a group of the run's own experiment; Conflict for any other group id, another
        project's answered as one that does not exist (409: the run exists, its body names no group of it)."""
        if group_id is None:
            return None
        sid = self._stored_id(db, project, "group", group_id)
        row = db.execute("SELECT experiment_id FROM groups WHERE id = ?", (sid,)).fetchone()
        if row is None or row["experiment_id"] != experiment_sid:
            raise Conflict(f"group_id: no group {group_id} in this run's experiment")
        return sid

    # ------------------------------------------------------------- experiments, groups, runs

    def create_experiment(self, project: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        cid = body.pop("id", None) or secrets.token_hex(16)
        name = body.pop("experiment_name")
        body.pop("project_id", None)
        now = time.time()
        with self.local.transaction() as db:
            eid, new = self._claim(db, project, "experiment", cid, None)
            if not new:
                return {"id": cid, "experiment_name": name}, False
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
        return {"id": cid, "experiment_name": name, "project_id": project}, True

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
            eid, _ = self.own(db, project, "experiment", experiment_id)
            self._update(db, "experiments", eid, patch, EXPERIMENT_COLUMNS)

    def create_group(self, project: str, experiment_id: str, group_id: str | None, name: str) -> tuple[str, bool]:
        cid = group_id or secrets.token_hex(16)
        with self.local.transaction() as db:
            eid, _ = self.own(db, project, "experiment", experiment_id)
            gid, new = self._claim(db, project, "group", cid, eid)
            if new:
                db.execute("INSERT INTO groups VALUES (?, ?, ?, ?)", (gid, eid, name, time.time()))
        return cid, new

    def create_run(self, project: str, body: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        cid = body.pop("id", None) or secrets.token_hex(16)
        experiment_id = body.pop("experiment_id")
        run_config = body.get("run_config") or {}
        now = time.time()
        with self.local.transaction() as db:
            eid, _ = self.own(db, project, "experiment", experiment_id)
            rid, new = self._claim(db, project, "run", cid, eid)
            if not new:
                return {"id": cid, "experiment_id": experiment_id}, False
            group = self._group_in(db, project, body.get("group_id"), eid)
            known = ("group_id", "name", "recipe_kind", "seed", "status", "run_config")
            extra = {k: v for k, v in body.items() if k not in known}
            db.execute(
                "INSERT INTO runs (id, experiment_id, group_id, name, recipe_kind, seed, status, run_config, extra,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    rid,
                    eid,
                    group,
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
        return {"id": cid, "experiment_id": experiment_id, "status": body.get("status") or "pending"}, True

    def update_run(self, project: str, run_id: str, patch: dict[str, Any]) -> None:
        with self.local.transaction() as db:
            rid, eid = self.own(db, project, "run", run_id)
            if "group_id" in patch:
                patch["group_id"] = self._group_in(db, project, patch["group_id"], eid)
            self._update(db, "runs", rid, patch, RUN_COLUMNS)

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
            rid, _ = self.own(db, project, "run", run_id)
            fresh = self._fresh(db, rid, [r[3] for r in rows])
            values = [
                (rid, step, split, json_text(metrics), now if ts is None else ts)
                for (step, split, metrics, _, ts), new in zip(rows, fresh, strict=True)
                if new
            ]
            db.executemany("INSERT INTO step_metrics VALUES (?, ?, ?, ?, ?)", values)
        return len(values)

    def create_eval(self, project: str, run_id: str, body: dict[str, Any]) -> tuple[str, bool]:
        cid = body.pop("id", None) or secrets.token_hex(16)
        with self.local.transaction() as db:
            rid, _ = self.own(db, project, "run", run_id)
            vid, new = self._claim(db, project, "eval", cid, rid)
            if not new:
                return cid, False
            known = ("name", "benchmark_id", "step", "breakdowns", "tags", "metrics")
            extra = {k: v for k, v in body.items() if k not in known}
            db.execute(
                "INSERT INTO evals VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    vid,
                    rid,
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
        return cid, True

    def add_checkpoint(self, project: str, run_id: str, body: dict[str, Any]) -> tuple[str, bool]:
        cid = body.get("id") or secrets.token_hex(16)
        with self.local.transaction() as db:
            rid, _ = self.own(db, project, "run", run_id)
            sid, new = self._claim(db, project, "checkpoint", cid, rid)
            if not new:
                return cid, False
            db.execute(
                "INSERT INTO checkpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    sid,
                    rid,
                    body["uri"],
                    body.get("label"),
                    body.get("step"),
                    int(bool(body.get("is_final"))),
                    time.time(),
                ),
            )
        return cid, True

    def add_predictions(
        self, project: str, run_id: str, predictions: list[dict[str, Any]], keys: list[str | None]
    ) -> int:
        now = time.time()
        with self.local.transaction() as db:
            rid, _ = self.own(db, project, "run", run_id)
            values = [
                (rid, json_text(p), now) for p, new in zip(predictions, self._fresh(db, rid, keys), strict=True) if new
            ]
            db.executemany("INSERT INTO predictions VALUES (?, ?, ?)", values)
        return len(values)

    # ------------------------------------------------------------- datasets and benchmarks of a project

    def list_data(self, project: str, kind: str) -> list[dict[str, Any]]:
        return self.read(
            "SELECT d.* FROM datasets d JOIN dash_data_projects p ON p.dataset_id = d.id"
            " WHERE d.kind = ? AND p.project_id = ? ORDER BY d.name, d.version",
            (kind, project),
        )

    def get_data(self, project: str, kind: str, data_id: str) -> dict[str, Any]:
        row = self.read_one(
            "SELECT d.* FROM datasets d JOIN dash_data_projects p ON p.dataset_id = d.id"
            " WHERE d.kind = ? AND d.id = ? AND p.project_id = ?",
            (kind, data_id, project),
        )
        if row is None:
            raise NotFound(f"{kind} {data_id} not found in project {project}")
        return row

    def data_rows(self, project: str, kind: str, data_id: str, limit: int, offset: int) -> list[Any]:
        self.get_data(project, kind, data_id)
        rows = self.read(
            "SELECT payload FROM dataset_rows WHERE dataset_id = ? ORDER BY idx LIMIT ? OFFSET ?",
            (data_id, limit, offset),
        )
        return [r["payload"] for r in rows]

    def create_data(self, project: str, kind: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A new dataset or benchmark of ``project``; without ``version``, one past the project's newest
        of that name (names resolve within a project)."""
        did = str(secrets.token_hex(16))
        name = fields.pop("name")
        with self.local.transaction() as db:
            version = fields.pop("version", None)
            if version is None:
                newest = db.execute(
                    "SELECT MAX(d.version) AS v FROM datasets d JOIN dash_data_projects p ON p.dataset_id = d.id"
                    " WHERE d.kind = ? AND d.name = ? AND p.project_id = ?",
                    (kind, name, project),
                ).fetchone()
                version = 1 + int(newest["v"] or 0)
            db.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                (
                    did,
                    kind,
                    name,
                    version,
                    fields.get("format"),
                    fields.get("source_kind"),
                    dump_json(fields.get("metadata") or {}),
                    time.time(),
                ),
            )
            db.execute("INSERT INTO dash_data_projects VALUES (?, ?)", (did, project))
        return {"id": did, "name": name, "version": version, **fields}

    def add_data_rows(self, project: str, kind: str, data_id: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
        with self.local.transaction() as db:
            start = db.execute(
                "SELECT d.n_rows FROM datasets d JOIN dash_data_projects p ON p.dataset_id = d.id"
                " WHERE d.kind = ? AND d.id = ? AND p.project_id = ?",
                (kind, data_id, project),
            ).fetchone()
            if start is None:
                raise NotFound(f"{kind} {data_id} not found in project {project}")
            n = int(start["n_rows"])
            db.executemany(
                "INSERT INTO dataset_rows VALUES (?, ?, ?)",
                [(data_id, n + i, json_text(r)) for i, r in enumerate(rows)],
            )
            db.execute("UPDATE datasets SET n_rows = ? WHERE id = ?", (n + len(rows), data_id))
        return {"ok": True, "inserted": len(rows)}

    # ------------------------------------------------------------- reads for the UI (read connections)

    def experiments(self) -> list[dict[str, Any]]:
        """The index: only the columns it shows (configs stay unread; of the hypothesis, its start)."""
        return self.read(
            "SELECT e.id, e.name, e.status, e.best_score, e.created_at, p.project_id,"
            " substr(e.hypothesis, 1, 200) AS hypothesis,"
            # a search's record (extra.search) is read only for experiments tagged "search" (evsys evolve's tag)
            " CASE WHEN json_valid(e.tags) AND EXISTS (SELECT 1 FROM json_each(e.tags) WHERE value = 'search')"
            " AND json_valid(e.extra) THEN json_type(e.extra, '$.search.candidates') = 'array' END AS is_search,"
            " (SELECT COUNT(*) FROM runs r WHERE r.experiment_id = e.id"
            " AND COALESCE(r.recipe_kind, '') != 'baseline') AS n_runs"
            " FROM experiments e LEFT JOIN dash_experiment_projects p ON p.experiment_id = e.id"
            " ORDER BY e.created_at DESC"
        )

    def experiment(self, experiment_id: str) -> dict[str, Any] | None:
        return self.read_one("SELECT * FROM experiments WHERE id = ?", (experiment_id,))

    def arms(self, experiment_id: str) -> list[dict[str, Any]]:
        return self.read(
            f"SELECT {ARM_COLUMNS} FROM runs r LEFT JOIN groups g ON g.id = r.group_id"
            " WHERE r.experiment_id = ? ORDER BY r.created_at, r.rowid",
            (experiment_id,),
        )

    def experiment_runs(self, experiment_id: str) -> list[dict[str, Any]]:
        """The arms as ``evsys_sdk.tracking.records.load_result`` reads them (it reads a LocalStore alike)."""
        return self.arms(experiment_id)

    def run_evals(self, run_id: str) -> list[dict[str, Any]]:
        return self.read("SELECT * FROM evals WHERE run_id = ? ORDER BY created_at, rowid", (run_id,))

    def run(self, run_id: str) -> dict[str, Any] | None:
        return self.read_one(
            "SELECT r.*, g.name AS group_name, e.name AS experiment_name FROM runs r"
            " LEFT JOIN groups g ON g.id = r.group_id LEFT JOIN experiments e ON e.id = r.experiment_id"
            " WHERE r.id = ?",
            (run_id,),
        )

    def checkpoints(self, run_id: str) -> list[dict[str, Any]]:
        return self.read("SELECT * FROM checkpoints WHERE run_id = ? ORDER BY created_at, rowid", (run_id,))

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self.read("SELECT path, size, created_at FROM dash_artifacts WHERE run_id = ? ORDER BY path", (run_id,))

    def predictions(self, run_id: str, limit: int = 200) -> tuple[list[dict[str, Any]], int]:
        rows = self.read("SELECT payload FROM predictions WHERE run_id = ? ORDER BY rowid LIMIT ?", (run_id, limit))
        total = self.read_one("SELECT COUNT(*) AS n FROM predictions WHERE run_id = ?", (run_id,))
        return [r["payload"] for r in rows], int((total or {}).get("n") or 0)

    def step_series(self, run_ids: list[str]) -> dict[str, dict[str, list[tuple[int, float]]]]:
        """run id -> metric name (``val/`` prefixed for the val split) -> [(step, value)] in step order,
        about CHART_POINTS per series, read by SQLite on this thread's read connection."""
        out: dict[str, dict[str, list[tuple[int, float]]]] = {rid: {} for rid in run_ids}
        for rid in run_ids:
            by_key: dict[tuple[str, str], list[tuple[int, float]]] = {}
            for row in self.read(_SAMPLED_POINTS, {"run": rid, "points": CHART_POINTS}):
                by_key.setdefault((row["split"], row["name"]), []).append((int(row["step"]), float(row["value"])))
            for row in self.read(_METRIC_NAMES, {"run": rid}):
                split, name = row["split"], row["name"]
                if (split, name) not in by_key:  # on too few rows to be in the sample: its own query
                    pts = [(int(r["step"]), float(r["value"])) for r in self.read(_ONE_METRIC, {"run": rid, **row})]
                    stride = max(1, -(-len(pts) // CHART_POINTS))
                    by_key[(split, name)] = pts[::stride] + ([pts[-1]] if (len(pts) - 1) % stride else [])
            for (split, key), pts in sorted(by_key.items()):
                name = key if split == "train" or key.startswith(f"{split}/") else f"{split}/{key}"
                out[rid][name] = pts
        return out
