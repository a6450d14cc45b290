"""Parallel arms: 64 mock arms that each wait 2 s (``max_steps: 1, step_seconds: 2``, an I/O-bound stand-in
for a hosted backend) under ``sequential``, ``process`` with 8 workers and ``ray`` with 8 arms in flight
(0.25 CPU each on a local Ray with this machine's CPUs). The figure is each parallel executor's wall time
over the ideal 64 x 2 s / 8; the one-time start of the engine (the process executor's fork server, Ray
and its 8 worker processes) is timed apart. Runs record to a temp LocalStore, as ``evsys run`` does.

``--arms``, ``--seconds``, ``--workers`` change the set-up; ``--only process,ray`` skips the others
(the sequential run alone takes arms x seconds). Ray needs evsys-ray installed; without it its row says so.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _bench import report

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.executors import Executor, build_executor
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.run.progress import Progress
from evsys_sdk.tracking.store import LocalStore

BUDGET = 1.3


def config(output_dir: str, arms: int, seconds: float) -> dict[str, Any]:
    return {
        "name": "executors_bench",
        "output_dir": output_dir,
        "matrix": {
            "base_run": {
                "name": "arm",
                "model": {"name": "tiny"},
                "backend": {"kind": "mock"},
                "algorithm": {"kind": "sft", "params": {"max_steps": 1, "step_seconds": seconds}},
                "data": {"source_kind": "in_memory", "rows": [{"prompt": "q", "completion": "a"}]},
            },
            "axes": {"seed": list(range(arms))},
        },
    }


def _warm_ray(executor: Any, workers: int) -> None:
    """Ray starts worker processes on demand: start ``workers`` of them (each importing evsys) up front."""
    import ray

    @ray.remote(num_cpus=executor.config.resources.get("num_cpus", 1))
    def ready(seconds: float) -> int:
        import os

        import evsys_sdk.orchestration.arm  # noqa: F401 - what an arm imports first

        time.sleep(seconds)  # overlapping sleeps force one worker process per task
        return os.getpid()

    pids = ray.get([ready.remote(0.5) for _ in range(workers)])
    if len(set(pids)) < workers:
        print(f"  note: ray warm-up reached {len(set(pids))} worker processes of {workers}", file=sys.stderr)


def measure(kind: str, arms: int, seconds: float, workers: int) -> dict[str, Any]:
    """Start-up and run wall time of one executor on the benchmark experiment."""
    params: dict[str, Any] = {}
    if kind == "process":
        params = {"max_workers": workers}
    elif kind == "ray":
        params = {"max_concurrent": workers, "resources": {"num_cpus": 0.25}}
    start = time.perf_counter()
    executor: Executor = build_executor(kind, params)
    executor.start()
    if kind == "ray":
        _warm_ray(executor, workers)
    startup = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_yaml(config(str(Path(tmp) / "out"), arms, seconds))
        store = LocalStore(Path(tmp) / "evsys.db")
        start = time.perf_counter()
        result = Experiment(cfg, store=store, executor=executor, progress=Progress(arms, enabled=False)).run()
        wall = time.perf_counter() - start
        store.close()
    executor.close()
    if failed := [a for a in result.arms if a.status != "completed"]:
        raise SystemExit(f"{kind}: {len(failed)} arms did not complete, first: {failed[0].error}")
    slots = 1 if kind == "sequential" else workers
    ideal = arms * seconds / slots
    return {"startup_s": startup, "wall_s": wall, "ideal_s": ideal, "ratio": wall / ideal, "slots": slots}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arms", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--only", default="sequential,process,ray")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    rows: dict[str, Any] = {}
    for kind in kinds:
        if kind == "ray" and importlib.util.find_spec("evsys_ray") is None:
            rows[kind] = "not installed (pip install evsys-ray)"
            continue
        figures = measure(kind, args.arms, args.seconds, args.workers)
        rows[kind] = (
            f"start-up {figures['startup_s']:.2f} s; {args.arms} arms in {figures['wall_s']:.1f} s; "
            f"ideal {figures['ideal_s']:.1f} s ({args.arms} x {args.seconds:g} s / {figures['slots']}); "
            f"ratio {figures['ratio']:.3f}"
        )
        rows[f"{kind}_figures"] = {k: round(v, 3) for k, v in figures.items()}
    parallel = [rows[f"{k}_figures"]["ratio"] for k in ("process", "ray") if f"{k}_figures" in rows]
    worst = max(parallel) if parallel else float("nan")
    report("executors", worst, "x ideal (worst of process, ray)", "<", BUDGET, rows, ok=bool(parallel))


if __name__ == "__main__":  # the process executor's workers import this module as __mp_main__
    main()
