"""Benchmark: 100,000 step metrics through DashboardClient to a real server on loopback.

Budget (issue 9): under 5 s wall from the first call until the server has every row, and under 1 s of
the training thread's time spent in client calls.

    python packages/evsys-dashboard/benchmarks/step_metrics.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()

    from evsys_dashboard.testing import DashboardServer
    from evsys_sdk.tracking.store import LocalStore

    tmp = Path(tempfile.mkdtemp(prefix="evsys-dash-bench-"))
    db_path = tmp / "server.db"
    # the server in its own process, as users run it (`evsys dashboard serve`)
    with DashboardServer(db_path, project="bench") as server:
        client = server.client(log_dir=tmp / "mirror")
        exp = client.create_experiment(experiment_name="bench")
        run = client.create_run(experiment_id=exp["id"], status="running")
        in_calls = 0.0
        wall0 = time.perf_counter()
        for step in range(args.rows):
            t = time.perf_counter()
            client.log_step_metric(run["id"], step=step, loss=1.0 / (step + 1), learning_rate=1e-4)
            in_calls += time.perf_counter() - t
        t = time.perf_counter()
        client.close()  # ships what is left and waits for the server's acknowledgement
        in_close = time.perf_counter() - t
        wall = time.perf_counter() - wall0
        stored = len(LocalStore(db_path).step_metrics(run["id"]))
    print(f"rows: {args.rows}, stored by the server: {stored}")
    print(f"wall until the server has every row: {wall:.2f} s (budget 5 s)")
    print(f"training thread in log_step_metric: {in_calls:.3f} s (budget 1 s); close() flush: {in_close:.2f} s")
    assert stored == args.rows


if __name__ == "__main__":
    main()
