"""What an MLflow server has acknowledged, kept in evsys's store beside the records it came from.

MLflow appends metric points: a batch sent twice is stored twice. So every acknowledged batch moves a
per-run, per-stream counter here in the same step, and a re-run or a resumed export (after kill -9 at any
point) sends only the points past it. The one window left, a batch the server stored but whose ack was
lost, is resent with identical points (same key, step, timestamp and value): MLflow's SQL store keeps one
of identical points, so that window adds nothing either. The live store (``mlflow`` log store) keeps the
same counters; its points carry the time they were logged, not the time evsys recorded them, so before
each batch it records the batch as ``sending``, and the export asks the server whether a batch left in
doubt arrived (a log-batch is stored whole or not at all) instead of resending it.
"""

from __future__ import annotations

import contextlib
import sqlite3

from evsys_sdk.tracking.store import LocalStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS mlflow_exports (
    uri TEXT NOT NULL, experiment_id TEXT NOT NULL, evsys_id TEXT NOT NULL, run_id TEXT NOT NULL,
    artifact_uri TEXT NOT NULL, digest TEXT, PRIMARY KEY (uri, experiment_id, evsys_id));
CREATE TABLE IF NOT EXISTS mlflow_acks (
    uri TEXT NOT NULL, run_id TEXT NOT NULL, stream TEXT NOT NULL, acked INTEGER NOT NULL,
    sending INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (uri, run_id, stream));
"""


class Ledger:
    def __init__(self, store: LocalStore, uri: str, experiment_id: str):
        """What was sent to the MLflow experiment ``experiment_id`` of the server ``uri``."""
        store.extend_schema(_SCHEMA)
        columns = {r["name"] for r in store.query("PRAGMA table_info(mlflow_acks)")}
        if "sending" not in columns:  # a ledger from before the live store
            with contextlib.suppress(sqlite3.OperationalError):  # another process added it meanwhile
                store.extend_schema("ALTER TABLE mlflow_acks ADD COLUMN sending INTEGER NOT NULL DEFAULT 0")
        self.store, self.uri, self.experiment_id = store, uri, experiment_id

    def run(self, evsys_id: str) -> dict[str, str] | None:
        """The MLflow run an evsys experiment (its parent run) or arm was exported as."""
        return self.store.one(
            "SELECT * FROM mlflow_exports WHERE uri = ? AND experiment_id = ? AND evsys_id = ?",
            (self.uri, self.experiment_id, evsys_id),
        )

    def claim_run(self, evsys_id: str, run_id: str, artifact_uri: str) -> dict[str, str]:
        """Record that ``evsys_id`` is the MLflow run ``run_id``, unless another writer (an arm's live
        store beside this one) recorded one first: the run recorded, whichever it is."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO mlflow_exports (uri, experiment_id, evsys_id, run_id, artifact_uri)"
                " VALUES (?, ?, ?, ?, ?)",
                (self.uri, self.experiment_id, evsys_id, run_id, artifact_uri),
            )
        known = self.run(evsys_id)
        assert known is not None
        return known

    def set_digest(self, evsys_id: str, digest: str) -> None:
        """The run's params, tags, status and artifacts as last sent: unchanged, they are not sent again."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE mlflow_exports SET digest = ? WHERE uri = ? AND experiment_id = ? AND evsys_id = ?",
                (digest, self.uri, self.experiment_id, evsys_id),
            )

    def position(self, run_id: str, stream: str) -> tuple[int, int]:
        """How many points of the stream the server acknowledged, and how many past them a live store
        had sent without an answer when it stopped (0: none in doubt)."""
        row = self.store.one(
            "SELECT acked, sending FROM mlflow_acks WHERE uri = ? AND run_id = ? AND stream = ?",
            (self.uri, run_id, stream),
        )
        return (int(row["acked"]), int(row["sending"])) if row else (0, 0)

    def ack(self, run_id: str, stream: str, acked: int, *, sending: int = 0) -> None:
        """``acked`` points acknowledged; ``sending`` more on their way (recorded before a live batch goes)."""
        with self.store.transaction() as db:
            db.execute(
                "INSERT INTO mlflow_acks VALUES (?, ?, ?, ?, ?) ON CONFLICT (uri, run_id, stream) DO UPDATE SET"
                " acked = excluded.acked, sending = excluded.sending",
                (self.uri, run_id, stream, acked, sending),
            )
