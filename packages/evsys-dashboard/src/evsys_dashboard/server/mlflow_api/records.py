"""MLflow's tracking entities as evsys records, in the dashboard's database (``ServerDB``).

- An MLflow experiment is an evsys experiment of the key's project. Its id is the record's id (the
  client's own id for a record whose id another project holds, as everywhere in the API), except that
  ``0``, MLflow's Default experiment, is each project's own experiment named ``Default``, made when
  first used. Names are unique within a project, as MLflow wants them.
- A run is a run (arm) record of that experiment: ``run_name`` its name, MLflow's status its status
  (RUNNING running, FINISHED completed, FAILED failed, KILLED cancelled, SCHEDULED pending),
  ``start_time`` its creation time, the params its ``run_config`` (``{"params": {...}}``) and MLflow's
  tags, user and end time its ``extra["mlflow"]``.
- Every metric point is a step row (``step_metrics``, split ``train``, the point's timestamp as its
  time), so the dashboard charts it; each metric's latest point (highest step, then timestamp) is kept
  in ``dash_latest_metrics`` and as the run's ``metrics`` (the arms table).
- Artifacts are rows of ``dash_artifacts`` (path, bytes) under the run, at
  ``mlflow-artifacts:/<experiment>/<run>/artifacts``.

MLflow's semantics: metric points are appended (never overwritten), a param is written once (the same
value again is fine, another is refused), tags are overwritten. Each request is one transaction: a
refused batch writes nothing.

Runs recorded by evsys itself (``evsys run``, the SDK) read through the same routes: their config's top
level as params (JSON text for what is not a string), their final metrics as metrics at step 0.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
import sqlite3
import time
from typing import Any

from evsys_dashboard.server.db import NotFound, ServerDB
from evsys_dashboard.server.mlflow_api import models as m
from evsys_dashboard.server.mlflow_api import search
from evsys_sdk.tracking.store import dump_json, json_text

DEFAULT_ID = "0"  # MLflow's Default experiment
DEFAULT_NAME = "Default"
STATUS_TO_EVSYS = {
    "RUNNING": "running",
    "SCHEDULED": "pending",
    "FINISHED": "completed",
    "FAILED": "failed",
    "KILLED": "cancelled",
}
STATUS_TO_MLFLOW = {v: k for k, v in STATUS_TO_EVSYS.items()}
RUN_NAME_TAG = "mlflow.runName"
USER_TAG = "mlflow.user"


class MlflowRefusal(Exception):
    """A request MLflow's server would refuse: its error code, HTTP status and message."""

    def __init__(self, code: str, status: int, message: str):
        super().__init__(message)
        self.code, self.status, self.message = code, status, message


def invalid(message: str) -> MlflowRefusal:
    return MlflowRefusal("INVALID_PARAMETER_VALUE", 400, message)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * 1000)


def _number(value: float | None) -> float | str:
    """A double as protobuf's JSON writes it (NaN and the infinities as strings; SQLite stores NaN as NULL)."""
    if value is None or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
    except Exception:
        offset = None
    if type(offset) is not int or offset < 0:
        raise invalid(f"invalid page_token {token!r}: pass the next_page_token of the previous page")
    return offset


def _rank(point: tuple[int, float, float]) -> tuple[int, float, float]:
    """MLflow's order of a metric's points (step, time, value; NaN lowest): the greatest is the latest."""
    step, ts, value = point
    return step, ts, -math.inf if math.isnan(value) else value


def _pairs(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in mapping.items()]


class Records:
    def __init__(self, db: ServerDB):
        self.db = db

    # ------------------------------------------------------------- ids

    def _public_ids(self, project: str, kind: str) -> dict[str, str]:
        """stored id -> the id the project knows the record by (its alias's client id)."""
        rows = self.db.read(
            "SELECT client_id, stored_id FROM dash_aliases WHERE project_id = ? AND kind = ?", (project, kind)
        )
        return {r["stored_id"]: r["client_id"] for r in rows}

    def _default_experiment(self, db: sqlite3.Connection, project: str) -> str:
        row = db.execute(
            "SELECT stored_id FROM dash_aliases WHERE project_id = ? AND kind = 'experiment' AND client_id = ?",
            (project, DEFAULT_ID),
        ).fetchone()
        if row is not None:
            return str(row["stored_id"])
        return self._insert_experiment(db, project, DEFAULT_NAME, {}, alias=DEFAULT_ID)

    @staticmethod
    def _insert_experiment(
        db: sqlite3.Connection, project: str, name: str, tags: dict[str, str], alias: str | None = None
    ) -> str:
        eid = secrets.token_hex(16)
        now = time.time()
        db.execute(
            "INSERT INTO experiments (id, name, status, extra, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (eid, name, "running", dump_json({"mlflow": {"tags": tags}}), now, now),
        )
        db.execute("INSERT INTO dash_experiment_projects VALUES (?, ?)", (eid, project))
        if alias is not None:
            db.execute("INSERT INTO dash_aliases VALUES (?, 'experiment', ?, ?)", (project, alias, eid))
        return eid

    def _experiment_sid(self, project: str, experiment_id: str, db: sqlite3.Connection | None = None) -> str:
        """The stored id of the project's experiment; ``db``: inside that write transaction (else a read)."""
        try:
            if experiment_id == DEFAULT_ID:
                if db is not None:
                    return self._default_experiment(db, project)
                try:
                    return self.db.owned(project, "experiment", DEFAULT_ID)
                except NotFound:  # made when first used
                    with self.db.local.transaction() as write:
                        return self._default_experiment(write, project)
            return (
                self.db.own(db, project, "experiment", experiment_id)[0]
                if db
                else self.db.owned(project, "experiment", experiment_id)
            )
        except NotFound:
            raise MlflowRefusal(
                "RESOURCE_DOES_NOT_EXIST", 404, f"No experiment with id={experiment_id} in this project"
            ) from None

    def _run_sid(self, project: str, run_id: str, db: sqlite3.Connection | None = None) -> str:
        try:
            return self.db.own(db, project, "run", run_id)[0] if db else self.db.owned(project, "run", run_id)
        except NotFound:
            raise MlflowRefusal("RESOURCE_DOES_NOT_EXIST", 404, f"Run with id={run_id} not found") from None

    @staticmethod
    def _mlflow_run(db: sqlite3.Connection, rid: str, run_id: str) -> dict[str, Any]:
        """The run row to write to: one made through MLflow (a run evsys recorded takes no MLflow writes)."""
        row: dict[str, Any] = dict(db.execute("SELECT * FROM runs WHERE id = ?", (rid,)).fetchone())
        if not isinstance((row["extra"] or {}).get("mlflow"), dict):
            raise invalid(f"Run {run_id} was recorded by evsys, not through MLflow: it takes no MLflow writes")
        return row

    # ------------------------------------------------------------- experiments

    def _render_experiment(self, project: str, row: dict[str, Any]) -> dict[str, Any]:
        public = self._public_ids(project, "experiment").get(row["id"], row["id"])
        mlflow = (row.get("extra") or {}).get("mlflow") or {}
        return {
            "experiment_id": public,
            "name": row["name"],
            "artifact_location": f"mlflow-artifacts:/{public}",
            "lifecycle_stage": "active",
            "creation_time": _ms(row["created_at"]),
            "last_update_time": _ms(row["updated_at"]),
            "tags": _pairs(mlflow.get("tags") or {}),
        }

    def _experiment_row(self, sid: str) -> dict[str, Any]:
        row = self.db.read_one("SELECT id, name, extra, created_at, updated_at FROM experiments WHERE id = ?", (sid,))
        assert row is not None, sid
        return row

    def create_experiment(self, project: str, body: m.CreateExperiment) -> str:
        with self.db.local.transaction() as db:
            if body.name == DEFAULT_NAME:
                self._default_experiment(db, project)
            taken = db.execute(
                "SELECT 1 FROM experiments e JOIN dash_experiment_projects p ON p.experiment_id = e.id"
                " WHERE p.project_id = ? AND e.name = ?",
                (project, body.name),
            ).fetchone()
            if taken is not None:
                raise MlflowRefusal(
                    "RESOURCE_ALREADY_EXISTS", 400, f"Experiment(name={body.name}) already exists in this project"
                )
            return self._insert_experiment(db, project, body.name, {t.key: t.value for t in body.tags})

    def experiment(self, project: str, experiment_id: str) -> dict[str, Any]:
        sid = self._experiment_sid(project, experiment_id)
        return self._render_experiment(project, self._experiment_row(sid))

    def experiment_by_name(self, project: str, name: str) -> dict[str, Any]:
        row = self.db.read_one(
            "SELECT e.id FROM experiments e JOIN dash_experiment_projects p ON p.experiment_id = e.id"
            " WHERE p.project_id = ? AND e.name = ? ORDER BY e.created_at DESC, e.rowid DESC LIMIT 1",
            (project, name),
        )
        if row is None and name == DEFAULT_NAME:
            return self.experiment(project, DEFAULT_ID)
        if row is None:
            raise MlflowRefusal(
                "RESOURCE_DOES_NOT_EXIST", 404, f"Could not find experiment with name '{name}' in this project"
            )
        return self._render_experiment(project, self._experiment_row(row["id"]))

    # ------------------------------------------------------------- runs

    def _render_runs(self, project: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """MLflow's Run JSON (info, data, inputs) of run rows (``runs.*``)."""
        if not rows:
            return []
        experiments = self._public_ids(project, "experiment")
        runs = self._public_ids(project, "run")
        latest: dict[str, list[dict[str, Any]]] = {}
        ids = [r["id"] for r in rows]
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            for point in self.db.read(
                f"SELECT * FROM dash_latest_metrics WHERE run_id IN ({','.join('?' * len(chunk))}) ORDER BY key",
                chunk,
            ):
                latest.setdefault(point["run_id"], []).append(
                    {
                        "key": point["key"],
                        "value": _number(point["value"]),
                        "timestamp": _ms(point["ts"]),
                        "step": point["step"],
                    }
                )
        out = []
        for row in rows:
            extra = row.get("extra") or {}
            mlflow = extra.get("mlflow") if isinstance(extra.get("mlflow"), dict) else None
            config = row.get("run_config") or {}
            if mlflow is not None:
                params = config.get("params") or {}
                tags = dict(mlflow.get("tags") or {})
                metrics = latest.get(row["id"], [])
            else:  # recorded by evsys itself
                params = {k: v if isinstance(v, str) else json_text(v) for k, v in config.items()}
                tags, metrics = (
                    {},
                    [
                        {"key": k, "value": _number(float(v)), "timestamp": _ms(row["updated_at"]), "step": 0}
                        for k, v in (row.get("metrics") or {}).items()
                        if isinstance(v, int | float) and not isinstance(v, bool)
                    ],
                )
                mlflow = {}
            name = row.get("name") or ""
            if name:
                tags[RUN_NAME_TAG] = name
            public = runs.get(row["id"], row["id"])
            experiment = experiments.get(row["experiment_id"], row["experiment_id"])
            info = {
                "run_id": public,
                "run_uuid": public,
                "run_name": name,
                "experiment_id": experiment,
                "user_id": mlflow.get("user_id") or tags.get(USER_TAG) or "",
                "status": STATUS_TO_MLFLOW.get(row["status"], "RUNNING"),
                "start_time": _ms(row["created_at"]),
                "artifact_uri": f"mlflow-artifacts:/{experiment}/{public}/artifacts",
                "lifecycle_stage": "active",
            }
            if mlflow.get("end_time") is not None:
                info["end_time"] = mlflow["end_time"]
            data = {"metrics": metrics, "params": _pairs(params), "tags": _pairs(tags)}
            out.append({"info": info, "data": data, "inputs": {}})
        return out

    def _run_row(self, sid: str) -> dict[str, Any]:
        row = self.db.read_one("SELECT * FROM runs WHERE id = ?", (sid,))
        assert row is not None, sid
        return row

    def run(self, project: str, run_id: str) -> dict[str, Any]:
        sid = self._run_sid(project, run_id)
        return self._render_runs(project, [self._run_row(sid)])[0]

    def create_run(self, project: str, body: m.CreateRun) -> dict[str, Any]:
        tags = {t.key: t.value for t in body.tags}
        name = body.run_name or tags.get(RUN_NAME_TAG) or ""
        with self.db.local.transaction() as db:
            eid = self._experiment_sid(project, body.experiment_id, db)
            rid = secrets.token_hex(16)
            name = name or f"run-{rid[:8]}"
            tags[RUN_NAME_TAG] = name
            user = body.user_id or tags.get(USER_TAG) or ""
            start = time.time() if body.start_time is None else body.start_time / 1000
            db.execute(
                "INSERT INTO runs (id, experiment_id, name, status, run_config, extra, created_at, updated_at)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (
                    rid,
                    eid,
                    name,
                    dump_json({"params": {}}),
                    dump_json({"mlflow": {"tags": tags, "user_id": user}}),
                    start,
                    time.time(),
                ),
            )
        return self._render_runs(project, [self._run_row(rid)])[0]

    def update_run(self, project: str, body: m.UpdateRun) -> dict[str, Any]:
        with self.db.local.transaction() as db:
            rid = self._run_sid(project, body.run_id, db)
            row = self._mlflow_run(db, rid, body.run_id)
            extra = row["extra"] or {}
            mlflow = extra.setdefault("mlflow", {})
            name, status = row["name"], row["status"]
            if body.run_name:
                name = body.run_name
                mlflow.setdefault("tags", {})[RUN_NAME_TAG] = name
            if body.status is not None:
                status = STATUS_TO_EVSYS[body.status]
            if body.end_time is not None:
                mlflow["end_time"] = body.end_time
            db.execute(
                "UPDATE runs SET name = ?, status = ?, extra = ?, updated_at = ? WHERE id = ?",
                (name, status, dump_json(extra), time.time(), rid),
            )
        info: dict[str, Any] = self._render_runs(project, [self._run_row(rid)])[0]["info"]
        return info

    def log_batch(
        self, project: str, run_id: str, metrics: list[m.Metric], params: list[m.Param], tags: list[m.Tag]
    ) -> None:
        if len(metrics) + len(params) + len(tags) > m.MAX_BATCH_ENTITIES:
            raise invalid(
                f"A batch logging request can contain at most {m.MAX_BATCH_ENTITIES} metrics, params and tags in total"
            )
        keys = [p.key for p in params]
        if len(set(keys)) != len(keys):
            twice = sorted({k for k in keys if keys.count(k) > 1})
            raise invalid(
                f"Duplicate parameter keys have been submitted: {twice}. Please ensure the request"
                " contains only one param value per param key."
            )
        with self.db.local.transaction() as db:
            rid = self._run_sid(project, run_id, db)
            row = self._mlflow_run(db, rid, run_id)
            config, extra, name = row["run_config"] or {}, row["extra"], row["name"]
            stored = config.setdefault("params", {})
            for p in params:
                if p.key in stored and stored[p.key] != p.value:
                    raise invalid(
                        f"Changing param values is not allowed. Param with key='{p.key}' was already logged with"
                        f" value='{stored[p.key]}' for run ID='{run_id}'. Attempted logging new value '{p.value}'."
                    )
                stored[p.key] = p.value
            run_tags = extra["mlflow"].setdefault("tags", {})
            for t in tags:
                run_tags[t.key] = t.value
                if t.key == RUN_NAME_TAG and t.value:
                    name = t.value
            changed: dict[str, Any] = {"updated_at": time.time()}  # only what the request changes
            if params:
                changed["run_config"] = dump_json(config)
            if tags:
                changed.update(extra=dump_json(extra), name=name)
            if metrics:
                changed["metrics"] = dump_json(self._log_metrics(db, rid, metrics))
            sets = ", ".join(f"{column} = ?" for column in changed)
            db.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*changed.values(), rid))

    @staticmethod
    def _log_metrics(db: sqlite3.Connection, rid: str, metrics: list[m.Metric]) -> dict[str, float]:
        """Append the points as step rows (consecutive points of one step and time share a row, a key
        logged twice there starts another), update each key's latest point; the run's latest metrics."""
        rows: list[tuple[int, float, dict[str, float]]] = []
        for p in metrics:
            ts = p.timestamp / 1000
            if rows and rows[-1][0] == p.step and rows[-1][1] == ts and p.key not in rows[-1][2]:
                rows[-1][2][p.key] = p.value
            else:
                rows.append((p.step, ts, {p.key: p.value}))
        db.executemany(
            "INSERT INTO step_metrics VALUES (?, ?, 'train', ?, ?)", [(rid, s, json_text(v), ts) for s, ts, v in rows]
        )
        latest = {
            r["key"]: (r["step"], r["ts"], math.nan if r["value"] is None else r["value"])
            for r in db.execute("SELECT key, value, step, ts FROM dash_latest_metrics WHERE run_id = ?", (rid,))
        }
        changed = set()
        for p in metrics:
            point = (p.step, p.timestamp / 1000, p.value)
            if p.key not in latest or _rank(point) >= _rank(latest[p.key]):
                latest[p.key] = point
                changed.add(p.key)
        db.executemany(
            "INSERT OR REPLACE INTO dash_latest_metrics VALUES (?, ?, ?, ?, ?)",
            [(rid, k, latest[k][2], latest[k][0], latest[k][1]) for k in sorted(changed)],
        )
        return {k: value for k, (_, _, value) in sorted(latest.items())}

    def metric_history(
        self, project: str, run_id: str, key: str, max_results: int | None, page_token: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Every point of ``key`` by step, then time (a page of ``max_results`` when given). Step rows of
        other splits than ``train`` are named as the dashboard names them (``val/loss``)."""
        rid = self._run_sid(project, run_id)
        # the bare keys a row may hold the metric under: the key itself, or its part after a split's name
        candidates = [("", key)] + [(key[:i], key[i + 1 :]) for i, c in enumerate(key) if c == "/"]
        needles = {json_text(bare) + ":" for _, bare in candidates}
        where = " OR ".join("instr(metrics, ?) > 0" for _ in needles)
        rows = self.db.read(
            f"SELECT step, split, ts, metrics FROM step_metrics WHERE run_id = ? AND ({where})"
            " ORDER BY step, ts, rowid",
            (rid, *needles),
        )
        points = []
        for row in rows:
            values = row["metrics"] if isinstance(row["metrics"], dict) else {}
            split = row["split"]
            for bare, value in values.items():
                shown = bare if split == "train" or bare.startswith(f"{split}/") else f"{split}/{bare}"
                if shown == key and isinstance(value, int | float) and not isinstance(value, bool):
                    points.append(
                        {"key": key, "value": _number(float(value)), "timestamp": _ms(row["ts"]), "step": row["step"]}
                    )
        start = _offset(page_token)
        if max_results is None:
            return points[start:], None
        end = start + max_results
        return points[start:end], _token(end) if end < len(points) else None

    def search(self, project: str, body: m.SearchRuns) -> tuple[list[dict[str, Any]], str | None]:
        try:
            clauses = search.parse_filter(body.filter)
            order = search.parse_order(body.order_by)
        except ValueError as exc:
            raise invalid(f"Invalid search: {exc}") from None
        start = _offset(body.page_token)
        if body.run_view_type == "DELETED_ONLY":
            return [], None
        sids: list[str] = []
        for eid in dict.fromkeys(body.experiment_ids):
            try:  # an unknown experiment (or another project's) holds no runs, as in MLflow
                sids.append(self._experiment_sid(project, eid))
            except MlflowRefusal:
                continue
        rows: list[dict[str, Any]] = []
        for sid in sids:
            rows += self.db.read("SELECT * FROM runs WHERE experiment_id = ?", (sid,))
        runs = [r for r in self._render_runs(project, rows) if search.matches(r, clauses)]
        runs = search.sort_runs(runs, order)
        end = start + body.max_results
        return runs[start:end], _token(end) if end < len(runs) else None

    # ------------------------------------------------------------- artifacts

    def _artifact_run(self, project: str, experiment_id: str, run_id: str) -> str:
        """The stored id of the run whose artifact root is ``<experiment_id>/<run_id>/artifacts``."""
        rid = self._run_sid(project, run_id)
        run = self._render_runs(project, [self._run_row(rid)])[0]
        if run["info"]["experiment_id"] != experiment_id:
            raise MlflowRefusal(
                "RESOURCE_DOES_NOT_EXIST", 404, f"Run {run_id} is not a run of experiment {experiment_id}"
            )
        return rid

    def put_artifact(self, project: str, experiment_id: str, run_id: str, path: str, content: bytes) -> None:
        rid = self._artifact_run(project, experiment_id, run_id)
        with self.db.local.transaction() as db:
            self._mlflow_run(db, rid, run_id)
            db.execute(
                "INSERT OR REPLACE INTO dash_artifacts VALUES (?, ?, ?, ?, ?)",
                (rid, path, len(content), content, time.time()),
            )

    def artifact(self, project: str, experiment_id: str, run_id: str, path: str) -> bytes:
        rid = self._artifact_run(project, experiment_id, run_id)
        row = self.db.read_one("SELECT content FROM dash_artifacts WHERE run_id = ? AND path = ?", (rid, path))
        if row is None:
            raise MlflowRefusal("RESOURCE_DOES_NOT_EXIST", 404, f"No artifact {path!r} in run {run_id}")
        return bytes(row["content"])

    def list_artifacts(self, project: str, experiment_id: str, run_id: str, folder: str) -> list[dict[str, Any]]:
        """The files and folders right inside ``folder`` ("" for the root), as MLflow lists them."""
        rid = self._artifact_run(project, experiment_id, run_id)
        prefix = f"{folder}/" if folder else ""
        rows = self.db.read(
            "SELECT path, size FROM dash_artifacts WHERE run_id = ? AND substr(path, 1, ?) = ? ORDER BY path",
            (rid, len(prefix), prefix),
        )
        entries: dict[str, dict[str, Any]] = {}
        for row in rows:
            head, slash, _ = row["path"][len(prefix) :].partition("/")
            if slash:
                entries.setdefault(head, {"path": head, "is_dir": True})
            else:
                entries[head] = {"path": head, "is_dir": False, "file_size": row["size"]}
        return list(entries.values())
