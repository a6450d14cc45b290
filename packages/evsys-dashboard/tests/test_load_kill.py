"""Eight clients logging at once, the server killed with SIGKILL mid-load, restarted, every mirror synced:
every point is on the server exactly once and the database is intact."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import PROJECT, free_port, make_key

from evsys_dashboard import DashboardClient
from evsys_dashboard.sync import sync_mirror

CLIENTS = 8
POINTS = 10_000


def _stored(db_path: Path) -> int:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30) as db:
        return int(db.execute("SELECT COUNT(*) FROM step_metrics").fetchone()[0])


@pytest.mark.timeout(240)
def test_load_kill_restart_sync_loses_and_duplicates_nothing(tmp_path: Path, spawn_server: Any) -> None:
    db_path = tmp_path / "server.db"
    key = make_key(db_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = spawn_server(db_path, port)
    runs: dict[int, str] = {}
    errors: list[BaseException] = []

    def client_for(i: int) -> DashboardClient:
        return DashboardClient(
            base_url=url,
            api_key=key,
            project_id=PROJECT,
            log_dir=tmp_path / f"mirror-{i}",
            backoff_s=0.05,
            max_backoff_s=0.5,
            batch_size=500,
            timeout_s=10,
        )

    def load(i: int) -> None:
        try:
            client = client_for(i)
            exp = client.create_experiment(experiment_name=f"load-{i}")
            runs[i] = client.create_run(experiment_id=exp["id"], status="running")["id"]
            for step in range(POINTS):
                client.log_step_metric(runs[i], step=step, loss=1.0 / (step + 1), client=float(i))
                if step % 50 == 49:
                    time.sleep(0.01)  # a training loop's pace: the load spans the kill
            client.update_run(runs[i], status="completed")
            client.close()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while _stored(db_path) < CLIENTS * POINTS // 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    at_kill = _stored(db_path)
    proc.kill()  # SIGKILL: no shutdown, mid-transaction for all it knows
    proc.wait(timeout=10)
    assert 0 < at_kill < CLIENTS * POINTS  # killed mid-load
    spawn_server(db_path, port)  # restarted on the same port: the clients' retries reach it
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(runs) == CLIENTS
    reports = []
    for i in range(CLIENTS):
        with client_for(i) as client:
            reports.append(sync_mirror(client, tmp_path / f"mirror-{i}"))
    assert all(r.errors == [] and r.set_aside == [] for r in reports)
    with sqlite3.connect(db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for i, rid in runs.items():
            total, distinct = db.execute(
                "SELECT COUNT(*), COUNT(DISTINCT step) FROM step_metrics WHERE run_id = ?", (rid,)
            ).fetchone()
            lost, duplicated = POINTS - distinct, total - distinct
            assert (lost, duplicated) == (0, 0), (i, lost, duplicated)
        assert db.execute("SELECT COUNT(*) FROM step_metrics").fetchone()[0] == CLIENTS * POINTS
        assert db.execute("SELECT COUNT(*) FROM runs WHERE status = 'completed'").fetchone()[0] == CLIENTS
        assert db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == CLIENTS
