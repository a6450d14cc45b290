"""One recorded evsys experiment as one MLflow experiment: a parent run, a child run per arm.

A child run carries its arm's step metrics (stream ``steps``), its evals as ``eval/<name>/<metric>``
(stream ``evals``), its run config flattened into params, its group, seed and status as tags (a search's
candidate adds its lineage) and its ``run_result.json``. The parent carries the baselines as
``baseline/<model>/<benchmark>/<metric>``, the conclusion and best as tags, and ``best.yaml`` when a search
wrote one. Every stream resumes past what the ledger says the server acknowledged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_mlflow.client import MlflowClient
from evsys_mlflow.ledger import Ledger
from evsys_mlflow.points import (
    MAX_BATCH_BYTES,
    MAX_METRICS,
    MAX_PARAMS,
    MAX_TAG_VALUE,
    MAX_TAGS,
    POINT_BYTES,
    flatten,
    metric_key,
    number,
    row_points,
)
from evsys_sdk.spec.config import safe_run_name
from evsys_sdk.tracking.records import BASELINE_KIND
from evsys_sdk.tracking.store import LocalStore

_STATUS = {"completed": "FINISHED", "failed": "FAILED", "running": "RUNNING", "pending": "RUNNING"}


@dataclass
class ExportSummary:
    experiment_id: str
    parent_run_id: str
    runs: int = 0
    points_sent: int = 0
    points_total: int = 0
    warnings: list[str] = field(default_factory=list)


def step_points(store: LocalStore, run_id: str) -> list[dict[str, Any]]:
    """A run's step metrics as MLflow points, in the order they were recorded (append-only)."""
    rows = store.query("SELECT step, split, metrics, ts FROM step_metrics WHERE run_id = ? ORDER BY rowid", (run_id,))
    return [p for r in rows for p in row_points(int(r["step"]), r["split"], r["metrics"] or {}, r["ts"])]


def _eval_points(evals: list[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    points = []
    for e in evals:
        for k, v in (e["metrics"] or {}).items():
            if (value := number(v)) is not None:
                key = metric_key(f"{prefix}{e.get('name') or 'benchmark'}/{k}")
                points.append(
                    {"key": key, "value": value, "timestamp": int(e["created_at"] * 1000), "step": e.get("step") or 0}
                )
    return points


def _batches(points: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive slices within MLflow's log-batch limits: 1000 metrics and 1 MB."""
    batch: list[dict[str, Any]] = []
    size = 0
    for p in points:
        cost = POINT_BYTES + len(p["key"])
        if batch and (len(batch) == MAX_METRICS or size + cost > MAX_BATCH_BYTES // 2):
            yield batch
            batch, size = [], 0
        batch.append(p)
        size += cost
    if batch:
        yield batch


def arm_tags(run: dict[str, Any], lineage: dict[str, dict[str, Any]]) -> dict[str, str]:
    """An arm's tags from its stored run (``experiment_runs``), with its candidate's lineage in a search."""
    tags = {"evsys.status": str(run["status"]), "evsys.kind": "arm"}
    for key in ("seed", "group_name", "recipe_kind", "error_message"):
        if run.get(key) is not None:
            tags[f"evsys.{key.removesuffix('_name').removesuffix('_message')}"] = str(run[key])
    # A candidate's seeds are its replicate group; with one seed its run is named like it.
    candidate = lineage.get(str(run.get("group_name") or run.get("name")))
    if candidate is not None:
        tags.update(
            {
                "evsys.candidate": str(candidate["id"]),
                "evsys.parents": ",".join(candidate.get("parents") or []),
                "evsys.operator": str(candidate.get("operator") or ""),
                "evsys.generation": str(candidate.get("generation")),
                "evsys.patch": json.dumps(candidate.get("patch") or {}, default=str),
            }
        )
    return tags


def mlflow_run(
    client: MlflowClient,
    ledger: Ledger,
    exp_id: str,
    evsys_id: str,
    name: str,
    created_at: float,
    tags: dict[str, str],
) -> dict[str, str]:
    """The MLflow run of ``evsys_id``: from the ledger, else found by its ``evsys.id`` tag (created
    before a crash could record it), else created now. Two writers creating one at once (arms' live
    stores making their experiment's parent run) both record theirs; the ledger keeps the first and the
    other is deleted."""
    known = ledger.run(evsys_id)
    if known is not None:
        return known
    info = client.find_run(exp_id, "evsys.id", evsys_id) or client.create_run(
        exp_id, name=name, start_ms=int(created_at * 1000), tags={"evsys.id": evsys_id, **tags}
    )
    kept = ledger.claim_run(evsys_id, info["run_id"], info["artifact_uri"])
    if kept["run_id"] != info["run_id"]:
        client.delete_run(info["run_id"])
    return kept


class Exporter:
    def __init__(self, store: LocalStore, client: MlflowClient, *, say: Callable[[str], None] = lambda _: None):
        self.store, self.client, self.say = store, client, say
        self.project_root = store.path.parent.parent

    def export(self, experiment: dict[str, Any], mlflow_experiment: str | None = None) -> ExportSummary:
        exp_id = self.client.experiment_id(mlflow_experiment or experiment["name"])
        self.ledger = Ledger(self.store, self.client.uri, exp_id)
        parent = self._run(exp_id, experiment["id"], experiment["name"], experiment["created_at"], {})
        summary = ExportSummary(exp_id, parent["run_id"])
        runs = self.store.experiment_runs(experiment["id"])
        lineage = self._lineage(experiment["id"])
        output_dir = (experiment.get("config") or {}).get("output_dir")
        arms_dir = self._path(output_dir) if output_dir else None
        if arms_dir is not None and lineage:  # evsys evolve runs a search's arms in <output_dir>/search-<id[:8]>
            arms_dir /= f"search-{experiment['id'][:8]}"
        baselines: list[dict[str, Any]] = []
        for run in runs:
            if run.get("recipe_kind") == BASELINE_KIND:
                model = run.get("name") or "model"
                baselines += _eval_points(self.store.run_evals(run["id"]), f"baseline/{model}/")
                continue
            tags = {"mlflow.parentRunId": parent["run_id"], **arm_tags(run, lineage)}
            child = self._run(exp_id, run["id"], run.get("name") or run["id"], run["created_at"], tags)
            self._stream(child, "steps", step_points(self.store, run["id"]), summary)
            self._stream(child, "evals", _eval_points(self.store.run_evals(run["id"]), "eval/"), summary)
            artifacts = {}
            if arms_dir is not None and run.get("name"):
                result = arms_dir / safe_run_name(run["name"]) / "run_result.json"
                if result.is_file():
                    artifacts["run_result.json"] = result.read_bytes()
            params = dict(flatten(run.get("run_config") or {}))
            self._meta(run["id"], child, params, tags, run, artifacts)
            summary.runs += 1
        self._stream(parent, "evals", baselines, summary)
        artifacts = {}
        if output_dir and (best := self._path(output_dir) / "best.yaml").is_file():
            artifacts["best.yaml"] = best.read_bytes()
        self._meta(experiment["id"], parent, {}, self._experiment_tags(experiment, lineage), experiment, artifacts)
        return summary

    def _path(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.project_root / p

    def _run(self, exp_id: str, evsys_id: str, name: str, created_at: float, tags: dict[str, str]) -> dict[str, str]:
        return mlflow_run(self.client, self.ledger, exp_id, evsys_id, name, created_at, tags)

    def _stream(self, run: dict[str, str], stream: str, points: list[dict[str, Any]], summary: ExportSummary) -> None:
        acked, sending = self.ledger.position(run["run_id"], stream)
        if sending:
            acked = self._settle(run["run_id"], stream, points, acked, sending)
        summary.points_total += len(points)
        for batch in _batches(points[acked:]):
            self.client.log_batch(run["run_id"], metrics=batch)
            acked += len(batch)
            self.ledger.ack(run["run_id"], stream, acked)
            summary.points_sent += len(batch)

    def _settle(self, run_id: str, stream: str, points: list[dict[str, Any]], acked: int, sending: int) -> int:
        """A live batch left in doubt (``sending`` points past ``acked``): the server stored all of it or
        none, so one key's point count tells which; the ledger then says so."""
        batch = points[acked : acked + sending]
        if batch:
            key = batch[0]["key"]
            if self.client.history_length(run_id, key) > sum(p["key"] == key for p in points[:acked]):
                acked += len(batch)
        self.ledger.ack(run_id, stream, acked)
        return acked

    def _meta(
        self,
        evsys_id: str,
        run: dict[str, str],
        params: dict[str, str],
        tags: dict[str, str],
        record: dict[str, Any],
        artifacts: dict[str, bytes],
    ) -> None:
        """Params, tags, artifacts and status: sent again only when they changed since the last export."""
        status = _STATUS.get(record["status"], "KILLED")
        end_ms = None if status == "RUNNING" else int(record["updated_at"] * 1000)
        tags = {k: v[:MAX_TAG_VALUE] for k, v in tags.items()}
        digest = hashlib.sha256(
            json.dumps(
                [params, tags, status, end_ms, {k: hashlib.sha256(v).hexdigest() for k, v in artifacts.items()}]
            ).encode()
        ).hexdigest()
        if (self.ledger.run(evsys_id) or {}).get("digest") == digest:
            return
        param_rows = [{"key": k, "value": v} for k, v in params.items()]
        tag_rows = [{"key": k, "value": v} for k, v in tags.items()]
        for i in range(0, max(len(param_rows), len(tag_rows)), MAX_PARAMS):
            self.client.log_batch(run["run_id"], params=param_rows[i : i + MAX_PARAMS], tags=tag_rows[i : i + MAX_TAGS])
        for name, content in artifacts.items():
            self.client.upload_artifact(run["artifact_uri"], name, content)
        self.client.update_run(run["run_id"], status=status, end_ms=end_ms)
        self.ledger.set_digest(evsys_id, digest)

    def _experiment_tags(self, experiment: dict[str, Any], lineage: dict[str, Any]) -> dict[str, str]:
        tags = {"evsys.status": str(experiment["status"]), "evsys.kind": "search" if lineage else "experiment"}
        for key in ("conclusion", "hypothesis", "best_score"):
            if experiment.get(key) not in (None, ""):
                tags[f"evsys.{key}"] = str(experiment[key])
        return tags

    def _lineage(self, experiment_id: str) -> dict[str, dict[str, Any]]:
        """A search's candidates by id (its journal), or nothing for a plain experiment."""
        if not self.store.one("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'search_events'"):
            return {}
        rows = self.store.query(
            "SELECT payload FROM search_events WHERE experiment_id = ? AND kind = 'candidate' ORDER BY seq",
            (experiment_id,),
        )
        return {str(r["payload"]["id"]): r["payload"] for r in rows}
