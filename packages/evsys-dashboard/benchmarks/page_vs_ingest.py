"""Benchmark: one-row writes while an experiment page with 160,000 step rows is being viewed.

For each server (this checkout's, and with ``--baseline-src DIR`` another tree's ``evsys_dashboard``, e.g.
the code before charts were downsampled in SQL on read-only connections), in its own process on
loopback: the median latency of a one-row step-metric write while idle, then while a thread views the
page without pause, and how long a page view takes. Ratios (during views / idle) compare the servers
side by side in one run: this machine's speed drifts.

    git archive <commit> packages/evsys-dashboard/src | tar -x -C /tmp/before
    python packages/evsys-dashboard/benchmarks/page_vs_ingest.py --baseline-src /tmp/before/packages/evsys-dashboard/src
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from evsys_dashboard.testing import create_key, free_port, wait_healthy

P = "/api/dashboard/api/sdk"
SERVE = (
    "import sys; from evsys_dashboard.server import serve; "
    "serve(sys.argv[1], port=int(sys.argv[2]), log_level='warning')"
)


def measure(label: str, src: str | None, rows: int, writes: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="evsys-dash-page-"))
    db_path = tmp / "server.db"
    key = create_key(db_path, "bench")
    port = free_port()
    env = {**os.environ, **({"PYTHONPATH": src} if src else {})}
    server = subprocess.Popen([sys.executable, "-c", SERVE, str(db_path), str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process=server)
        http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=600)
        eid = http.post(f"{P}/experiments/", json={"experiment_name": "big"}).json()["experiment"]["id"]
        big = http.post(f"{P}/runs/", json={"experiment_id": eid}).json()["run"]["id"]
        for start in range(0, rows, 20_000):
            batch = [
                {"step": s, "metrics": {"loss": 1 / (s + 1), "lr": 1e-4}}
                for s in range(start, min(rows, start + 20_000))
            ]
            assert http.post(f"{P}/runs/{big}/metrics/", json={"rows": batch}).status_code == 200
        other = http.post(f"{P}/experiments/", json={"experiment_name": "live"}).json()["experiment"]["id"]
        live = http.post(f"{P}/runs/", json={"experiment_id": other}).json()["run"]["id"]

        def write_ms(step: int) -> float:
            t = time.perf_counter()
            assert (
                http.post(f"{P}/runs/{live}/metrics/", json={"step": step, "metrics": {"loss": 0.5}}).status_code == 200
            )
            return (time.perf_counter() - t) * 1000

        for i in range(20):  # warm up
            write_ms(i)
        idle = statistics.median(write_ms(100 + i) for i in range(writes))
        views: list[float] = []
        stop = threading.Event()

        def view() -> None:
            with httpx.Client(base_url=url, timeout=600) as browser:
                while not stop.is_set():
                    t = time.perf_counter()
                    assert browser.get(f"/experiments/{eid}").status_code == 200
                    views.append(time.perf_counter() - t)

        viewer = threading.Thread(target=view)
        viewer.start()
        while not views:  # the first view is under way (or done) before writes are timed
            time.sleep(0.05)
            if len(views) == 0 and not viewer.is_alive():
                break
        during = statistics.median(write_ms(10_000 + i) for i in range(writes))
        stop.set()
        viewer.join()
        http.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {"idle_ms": idle, "during_ms": during, "ratio": during / idle, "view_s": statistics.median(views)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=160_000)
    parser.add_argument("--writes", type=int, default=100)
    parser.add_argument("--baseline-src", help="a tree's packages/evsys-dashboard/src to compare against")
    args = parser.parse_args()
    servers = [("this checkout", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    results = [(label, measure(label, src, args.rows, args.writes)) for label, src in servers]
    print(f"{args.rows} step rows on the viewed page; {args.writes} one-row writes each way")
    print(f"{'server':<15} {'write idle':>11} {'write during views':>19} {'ratio':>7} {'page view':>10}")
    for label, r in results:
        print(
            f"{label:<15} {r['idle_ms']:>8.2f} ms {r['during_ms']:>16.2f} ms {r['ratio']:>6.1f}x {r['view_s']:>8.2f} s"
        )


if __name__ == "__main__":
    main()
