"""MLflow clients logging into the dashboard, beside evsys's own client, in one run on one server.

20,000 metric points (4 metrics x 5,000 steps) into a fresh run, three ways, each repeated (alternating,
so the machine's drift hits all alike):

- ``mlflow log_batch``: ``MlflowClient.log_batch`` with 1,000 points a request (MLflow's limit);
- ``mlflow log_metrics async``: ``mlflow.log_metrics(..., step=s, synchronous=False)`` per step, then
  ``flush_async_logging`` (how transformers' MLflowCallback logs, one call per logging step);
- ``evsys DashboardClient``: ``ExperimentRun.log_step`` per step, then ``flush`` (the SDK's path).

Each timing ends when the server's database holds every point (counted there). Prints points/s per way:
mean, 95% CI (t over the repeats) and n, and each way's time relative to the evsys client's in the same
repeat.

    python packages/evsys-dashboard/benchmarks/mlflow_ingest.py [--steps 5000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

METRICS = ("loss", "lr", "grad_norm", "tokens_per_s")
T95 = {2: 12.706, 3: 4.303, 4: 3.182, 5: 2.776, 6: 2.571, 7: 2.447, 8: 2.365, 9: 2.306, 10: 2.262}


def _points(db_path: Path, run_id: str) -> int:
    from evsys_sdk.tracking.store import LocalStore

    store = LocalStore(db_path)
    try:
        rows = store.query("SELECT metrics FROM step_metrics WHERE run_id = ?", (run_id,))
        return sum(len(r["metrics"]) for r in rows)
    finally:
        store.close()


def _value(step: int, i: int) -> float:
    return 1.0 / (step + 1) + i


def mlflow_batch(experiment_id: str, steps: int) -> str:
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient()
    run_id = client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)
    points = [Metric(k, _value(s, i), now + s, s) for s in range(steps) for i, k in enumerate(METRICS)]
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])
    return run_id


def mlflow_async(experiment_id: str, steps: int) -> str:
    import mlflow

    with mlflow.start_run(experiment_id=experiment_id) as run:
        for s in range(steps):
            mlflow.log_metrics({k: _value(s, i) for i, k in enumerate(METRICS)}, step=s, synchronous=False)
        mlflow.flush_async_logging()
    return str(run.info.run_id)


def evsys_client(server: object, steps: int, log_dir: Path) -> str:
    from evsys_sdk import ExperimentRun

    client = server.client(log_dir=log_dir)  # type: ignore[attr-defined]
    with client, ExperimentRun(client, experiment_name="bench", recipe_kind="sft", run_config={}) as run:
        for s in range(steps):
            run.log_step(s, **{k: _value(s, i) for i, k in enumerate(METRICS)})
        client.flush()
        return str(run.run_id)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    from evsys_dashboard.testing import DashboardServer

    expected = args.steps * len(METRICS)
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, DashboardServer(Path(tmp) / "server.db", project="bench") as server:
        os.environ["MLFLOW_TRACKING_URI"] = f"{server.url}/mlflow"
        os.environ["MLFLOW_TRACKING_TOKEN"] = server.key
        import mlflow

        experiment_id = mlflow.MlflowClient().create_experiment("mlflow-ingest-bench")
        ways: dict[str, Callable[[int], str]] = {
            "mlflow log_batch": lambda r: mlflow_batch(experiment_id, args.steps),
            "mlflow log_metrics async": lambda r: mlflow_async(experiment_id, args.steps),
            "evsys DashboardClient": lambda r: evsys_client(server, args.steps, Path(tmp) / f"mirror{r}"),
        }
        for repeat in range(args.repeats):
            for name, way in ways.items():
                started = time.perf_counter()
                run_id = way(repeat)
                while _points(server.db_path, run_id) < expected:  # until the server has every point
                    time.sleep(0.01)
                times.setdefault(name, []).append(time.perf_counter() - started)
                assert _points(server.db_path, run_id) == expected, name
    base = times["evsys DashboardClient"]
    print(f"{expected:,} points per run, {args.repeats} repeats; load average {os.getloadavg()[0]:.1f}")
    print(f"{'way':<26} {'points/s (mean ± 95% CI)':>26} {'n':>3} {'time / evsys client':>20}")
    for name, ts in times.items():
        rates = [expected / t for t in ts]
        mean = statistics.mean(rates)
        half = T95.get(len(rates), 1.96) * statistics.stdev(rates) / math.sqrt(len(rates)) if len(rates) > 1 else 0
        ratio = statistics.mean(t / b for t, b in zip(ts, base, strict=True))
        print(f"{name:<26} {mean:>14,.0f} ± {half:>9,.0f} {len(rates):>3} {ratio:>19.2f}x")


if __name__ == "__main__":
    main()
