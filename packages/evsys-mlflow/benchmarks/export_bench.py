"""Export throughput and exactly-once under kill -9, against a real `mlflow server` (sqlite, loopback).

12 arms x 3 seeds x 2,000 steps x 4 metrics = 288,000 step points. One uninterrupted export gives points/s;
a second export of the same record into another MLflow experiment is killed with -9 three times (at a
quarter, half and three quarters of the points the ledger has seen acknowledged) and resumed; the server's
point count must then equal evsys's exactly.

    pip install './packages/evsys-mlflow[test]'
    python packages/evsys-mlflow/benchmarks/export_bench.py
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from mlflow.tracking import MlflowClient

from evsys_sdk.tracking.store import LocalStore

ARMS, SEEDS, STEPS, METRICS = 12, 3, 2000, 4
POINTS = ARMS * SEEDS * STEPS * METRICS


def record(workspace: Path) -> None:
    store = LocalStore(workspace / "evsys.db")
    exp = store.create_experiment(experiment_name="bench", config={"output_dir": str(workspace / "out")})
    for a in range(ARMS):
        group = store.create_group(exp["id"], f"arm{a}")
        for s in range(SEEDS):
            run = store.create_run(experiment_id=exp["id"], group_id=group["id"], name=f"arm{a}_s{s}", seed=s)
            rows = [(i, "train", {f"m{k}": a + s + i / STEPS + k for k in range(METRICS)}) for i in range(STEPS)]
            store.log_metrics_batch(run["id"], rows)
            store.update_run(run["id"], status="completed")
    store.update_experiment(exp["id"], status="completed")
    store.close()


def server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [
        sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--artifacts-destination", str(root / "art"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    for _ in range(600):
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{uri}/health", timeout=2).status_code == 200:
                return proc, uri
        time.sleep(0.2)
    raise RuntimeError("mlflow server did not start")


def export(workspace: Path, uri: str, experiment: str) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "evsys_sdk.cli", "mlflow", "export", "bench", "--uri", uri, "--experiment", experiment]
    env = {**os.environ, "EVSYS_WORKSPACE": str(workspace)}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def acked(workspace: Path, uri: str, experiment_run_ids: set[str] | None = None) -> int:
    with contextlib.closing(sqlite3.connect(workspace / "evsys.db", timeout=30)) as db:
        try:
            rows = db.execute("SELECT run_id, acked FROM mlflow_acks").fetchall()
        except sqlite3.OperationalError:
            return 0
    return sum(n for run_id, n in rows if experiment_run_ids is None or run_id in experiment_run_ids)


def server_points(client: MlflowClient, experiment: str) -> int:
    exp = client.get_experiment_by_name(experiment)
    total = 0
    for run in client.search_runs([exp.experiment_id], max_results=1000):
        total += sum(len(client.get_metric_history(run.info.run_id, k)) for k in run.data.metrics)
    return total


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        record(root / "ws")
        proc, uri = server(root)
        try:
            started = time.perf_counter()
            out = export(root / "ws", uri, "clean").communicate()
            clean_s = time.perf_counter() - started
            print(out[0].strip() or out[1])
            before = acked(root / "ws", uri)  # the clean export's points
            busy_s = 0.0
            for fraction in (0.25, 0.5, 0.75):
                started = time.perf_counter()
                p = export(root / "ws", uri, "killed")
                while acked(root / "ws", uri) - before < fraction * POINTS and p.poll() is None:
                    time.sleep(0.02)
                p.send_signal(signal.SIGKILL)
                p.wait()
                busy_s += time.perf_counter() - started
                print(f"killed -9 at {acked(root / 'ws', uri) - before} acknowledged points")
            started = time.perf_counter()
            out = export(root / "ws", uri, "killed").communicate()
            busy_s += time.perf_counter() - started
            print(out[0].strip() or out[1])
            client = MlflowClient(tracking_uri=uri)
            clean_n, killed_n = server_points(client, "clean"), server_points(client, "killed")
        finally:
            proc.terminate()
            proc.wait()
    print(f"evsys points: {POINTS} ({ARMS} arms x {SEEDS} seeds x {STEPS} steps x {METRICS} metrics)")
    print(f"uninterrupted: {clean_s:.1f} s = {POINTS / clean_s:,.0f} points/s; server holds {clean_n}")
    print(f"3 x kill -9 + resume: {busy_s:.1f} s in all ({busy_s / clean_s:.2f}x); server holds {killed_n}")
    print("exactly once:", clean_n == killed_n == POINTS)


if __name__ == "__main__":
    main()
