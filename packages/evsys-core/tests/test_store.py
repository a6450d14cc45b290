"""LocalStore writes under Ctrl-C: a KeyboardInterrupt landing anywhere in a write leaves no transaction open."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from evsys_sdk.tracking.store import LocalStore


class _InterruptAfter:
    """The store's connection, raising KeyboardInterrupt once just after ``sql`` returns: where Python raises
    a Ctrl-C that arrived while SQLite ran the statement (BEGIN IMMEDIATE waits for other writers). No signal
    is sent: the exception is injected where the signal handler would raise it."""

    def __init__(self, db: sqlite3.Connection, sql: str):
        self._db, self._sql = db, sql

    def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:
        cursor = self._db.execute(sql, *args)
        if sql.startswith(self._sql) and self._sql:
            self._sql = ""
            raise KeyboardInterrupt
        return cursor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize(("sql", "kept"), [("BEGIN", False), ("UPDATE", False), ("COMMIT", True)])
def test_ctrl_c_inside_a_write_leaves_the_store_writable_and_consistent(tmp_path: Path, sql: str, kept: bool) -> None:
    store = LocalStore(tmp_path / "evsys.db")
    eid = store.create_experiment(experiment_name="e")["id"]
    rid = store.create_run(experiment_id=eid, name="a")["id"]
    real, store._db = store._db, _InterruptAfter(store._db, sql)  # type: ignore[assignment]
    with pytest.raises(KeyboardInterrupt):
        store.update_run(rid, status="running")
    store._db = real
    assert not real.in_transaction
    store.update_experiment(eid, status="cancelled")  # the cancel path's write: no nested transaction
    assert store.one("SELECT status FROM runs WHERE id = ?", (rid,)) == {"status": "running" if kept else "pending"}
    assert store.find_experiment(eid)["status"] == "cancelled"  # type: ignore[index]


def test_a_transaction_inside_another_commits_with_it(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "evsys.db")
    eid = store.create_experiment(experiment_name="e")["id"]
    with pytest.raises(KeyboardInterrupt), store.transaction():
        store.create_run(experiment_id=eid, name="a")
        raise KeyboardInterrupt
    assert store.experiment_runs(eid) == []
    with store.transaction():
        store.create_run(experiment_id=eid, name="b")
        store.create_group(eid, "g")
    assert [r["name"] for r in store.experiment_runs(eid)] == ["b"] and store.experiment_groups(eid)
