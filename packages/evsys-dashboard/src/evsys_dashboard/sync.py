"""Replaying a local mirror to the server (``evsys dashboard sync``).

Every mirrored record carries its client id, and the server treats a known id as already recorded, so
a replay creates only what the server is missing: running it twice creates nothing new.

A record the server refuses (4xx) or keeps failing on (``SET_ASIDE_AFTER`` 5xx answers but 502/503/504)
is reported with its reason and skipped; the rest are still sent. An unreachable server (or one answering
502/503/504) stops the sync: nothing is lost, run it again.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_dashboard.client import DOWN_STATUSES, SET_ASIDE_AFTER, DashboardClient, request_batches
from evsys_dashboard.errors import DashboardClientError, DashboardUnavailableError
from evsys_dashboard.mirror import read_json, read_jsonl

# Fields of a mirrored record that are not sent back as an update.
_CREATE_ONLY = {"id", "experiment_name", "experiment_id", "project_id", "config", "run_config"}


@dataclass
class SyncReport:
    experiments: int = 0
    runs: int = 0
    created: int = 0
    existing: int = 0
    errors: list[str] = field(default_factory=list)  # refused (4xx): the record itself is wrong
    set_aside: list[str] = field(default_factory=list)  # the server failed on it SET_ASIDE_AFTER times

    def summary(self) -> str:
        text = (
            f"{self.experiments} experiments, {self.runs} runs replayed: {self.created} records created, "
            f"{self.existing} already on the server"
        )
        text += f", {len(self.errors)} refused" if self.errors else ""
        return text + (f", {len(self.set_aside)} set aside (server errors)" if self.set_aside else "")


def _public(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if not k.startswith("_")}


class _Replayer:
    def __init__(self, client: DashboardClient, report: SyncReport, retry_s: float):
        self.client = client
        self.report = report
        self.retry_s = retry_s

    def send(self, route: str, body: dict[str, Any]) -> dict[str, Any] | None:
        for attempt in range(1, SET_ASIDE_AFTER + 1):
            try:
                resp = self.client._request_now("POST", route, body=body)
            except DashboardClientError as exc:
                self.report.errors.append(str(exc))
                return None
            except DashboardUnavailableError as exc:
                if exc.status is None or exc.status in DOWN_STATUSES:
                    raise
                if attempt == SET_ASIDE_AFTER:
                    self.report.set_aside.append(f"{exc} ({SET_ASIDE_AFTER} times)")
                    return None
                time.sleep(self.retry_s * 2 ** (attempt - 1))
                continue
            return resp if isinstance(resp, dict) else None
        return None

    def create(self, route: str, body: dict[str, Any]) -> bool:
        resp = self.send(route, body)
        if resp is None:
            return False
        if resp.get("created"):
            self.report.created += 1
        else:
            self.report.existing += 1
        return True

    def batch(self, route: str, body: dict[str, Any], n: int) -> None:
        resp = self.send(route, body)
        if resp is None:
            return
        inserted = int(resp.get("inserted", 0))
        self.report.created += inserted
        self.report.existing += n - inserted


def sync_mirror(
    client: DashboardClient, log_dir: str | Path | None = None, *, batch_size: int = 2000, retry_s: float = 0.5
) -> SyncReport:
    """Send every record of the mirror at ``log_dir`` (default: the client's) the server does not have.

    Raises ``DashboardUnavailableError`` when the server cannot be reached (nothing is lost: run it again).
    A 5xx answer is retried after ``retry_s``, doubling, before the record is set aside.
    """
    if client.offline:
        raise DashboardUnavailableError("sync needs the server: unset EVSYS_OFFLINE")
    root = Path(log_dir) if log_dir is not None else client.log_dir
    if not root.is_dir():
        raise FileNotFoundError(f"no local mirror at {root}")
    report = SyncReport()
    r = _Replayer(client, report, retry_s)
    for exp_dir in sorted((root / "experiments").glob("*/")):
        record = read_json(exp_dir / "experiment.json")
        if record is None or "id" not in record:
            continue
        report.experiments += 1
        body = _public(record)
        body.setdefault("experiment_name", str(record["id"]))
        if client.project_id:
            body["project_id"] = client.project_id
        eid = str(record["id"])
        if not r.create("/sdk/experiments/", body):
            continue
        patch = {k: v for k, v in body.items() if k not in _CREATE_ONLY}
        if patch:
            r.send(f"/sdk/experiments/{eid}/", patch)
        for group in read_jsonl(exp_dir / "groups.jsonl"):
            r.create(f"/sdk/experiments/{eid}/groups/", {"id": group["id"], "name": group["name"]})
    for run_dir in sorted((root / "generations").glob("*/")):
        run_id = run_dir.name
        record = read_json(run_dir / "generation.json")
        if record is not None and "experiment_id" in record:
            report.runs += 1
            body = _public(record)
            if not r.create("/sdk/runs/", body):
                continue
            patch = {k: v for k, v in body.items() if k not in _CREATE_ONLY}
            r.send(f"/sdk/runs/{run_id}/", patch)
        rows = read_jsonl(run_dir / "metrics.jsonl")
        for start in range(0, len(rows), batch_size):
            chunk = [
                {
                    "step": row["step"],
                    "split": row.get("split", "train"),
                    "metrics": row["metrics"],
                    "uid": row.get("uid") or row.get("_uid"),
                    "ts": row.get("ts"),
                }
                for row in rows[start : start + batch_size]
                if "step" in row and isinstance(row.get("metrics"), dict)
            ]
            r.batch(f"/sdk/runs/{run_id}/metrics/", {"rows": chunk}, len(chunk))
        for ev in read_jsonl(run_dir / "evals.jsonl"):
            r.create(f"/sdk/runs/{run_id}/evals/", _public(ev))
        for ck in read_jsonl(run_dir / "checkpoints.jsonl"):
            r.create(f"/sdk/runs/{run_id}/checkpoints/", _public(ck))
        preds = read_jsonl(run_dir / "predictions.jsonl")
        for start, stop in request_batches(preds):
            chunk_p = preds[start:stop]
            body = {"predictions": [_public(p) for p in chunk_p], "uids": [p.get("_uid") for p in chunk_p]}
            r.batch(f"/sdk/runs/{run_id}/predictions/", body, len(chunk_p))
    return report
