"""64 short arms through ``slurm`` on the local one-node cluster against ``process``, side by side.

Each arm is a mock arm that waits ``--seconds`` (``max_steps: 1, step_seconds``: an I/O-bound stand-in).
Both executors get the same number of slots: ``process`` runs ``max_workers`` = the node's CPUs, ``slurm``
submits every arm at once (``max_in_flight: 64``, one job array, ``cpus_per_arm: 1``) and Slurm runs as
many as the node has CPUs. Per repeat, in alternating order, it reports:

- wall time / ideal, where ideal = arms x seconds / slots;
- the per-arm overhead in slot-seconds: (wall x slots - arms x seconds) / arms, what each arm costs beyond
  its own work (job start, interpreter and imports, result pickles, polling);
- for slurm, the driver's submission time per arm (sbatch of the array, divided by the arms).

Figures are the mean over ``--repeats`` with a 95% confidence interval (Student t). Needs the cluster of
``packages/evsys-slurm/ci/start-slurm.sh`` (or any Slurm: ``--partition``).

    python packages/evsys-slurm/benchmarks/slurm_vs_process.py            # 64 arms x 2 s, 3 repeats
    python packages/evsys-slurm/benchmarks/slurm_vs_process.py --arms 16 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from evsys_sdk.loading.yaml_loader import load_yaml
from evsys_sdk.orchestration.executors import Executor, build_executor
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.run.progress import Progress
from evsys_sdk.tracking.store import LocalStore

# two-sided 95% Student t quantiles by degrees of freedom
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def config(output_dir: str, arms: int, seconds: float) -> dict[str, Any]:
    return {
        "name": "slurm_bench",
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


def node_cpus(partition: str | None) -> int:
    cmd = ["sinfo", "-h", "-o", "%c"] + (["-p", partition] if partition else [])
    return int(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.split()[0])


def measure(kind: str, arms: int, seconds: float, slots: int, partition: str | None) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        if kind == "process":
            params: dict[str, Any] = {"max_workers": slots}
        else:
            params = {"folder": str(Path(tmp) / "jobs"), "max_in_flight": arms, "cpus_per_arm": 1, "poll_seconds": 0.2}
            if partition:
                params["partition"] = partition
        executor: Executor = build_executor(kind, params)
        executor.start()
        submit = 0.0
        if kind == "slurm":
            flush = executor._flush  # type: ignore[attr-defined]

            def timed_flush(handles: list[Any]) -> None:
                nonlocal submit
                start = time.perf_counter()
                flush(handles)
                submit += time.perf_counter() - start

            executor._flush = timed_flush  # type: ignore[attr-defined]
        cfg = load_yaml(config(str(Path(tmp) / "out"), arms, seconds))
        store = LocalStore(Path(tmp) / "evsys.db")
        start = time.perf_counter()
        result = Experiment(cfg, store=store, executor=executor, progress=Progress(arms, enabled=False)).run()
        wall = time.perf_counter() - start
        store.close()
        executor.close()
    if failed := [a for a in result.arms if a.status != "completed"]:
        raise SystemExit(f"{kind}: {len(failed)} arms did not complete, first: {failed[0].error}")
    ideal = arms * seconds / slots
    return {
        "wall_s": wall,
        "ratio": wall / ideal,
        "overhead_slot_s_per_arm": (wall * slots - arms * seconds) / arms,
        "submit_ms_per_arm": submit / arms * 1000,
    }


def mean_ci(values: list[float]) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.3g} (n=1)"
    half = T95.get(len(values) - 1, 1.96) * statistics.stdev(values) / len(values) ** 0.5
    return f"{mean:.3g} ± {half:.2g} (95% CI, n={len(values)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arms", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partition", default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    slots = node_cpus(args.partition)
    samples: dict[str, list[dict[str, float]]] = {"process": [], "slurm": []}
    for repeat in range(args.repeats):
        order = ("process", "slurm") if repeat % 2 == 0 else ("slurm", "process")
        for kind in order:
            figures = measure(kind, args.arms, args.seconds, slots, args.partition)
            samples[kind].append(figures)
            print(f"  repeat {repeat + 1} {kind}: " + json.dumps({k: round(v, 3) for k, v in figures.items()}))
    ideal = args.arms * args.seconds / slots
    print(f"{args.arms} arms x {args.seconds:g} s, {slots} slots: ideal {ideal:.1f} s")
    out: dict[str, Any] = {}
    for kind, rows in samples.items():
        keys = ("wall_s", "ratio", "overhead_slot_s_per_arm") + (("submit_ms_per_arm",) if kind == "slurm" else ())
        out[kind] = {k: mean_ci([r[k] for r in rows]) for k in keys}
        print(f"{kind}: " + "; ".join(f"{k} {v}" for k, v in out[kind].items()))
    paired = [s["wall_s"] / p["wall_s"] for s, p in zip(samples["slurm"], samples["process"], strict=True)]
    out["slurm_over_process_wall"] = mean_ci(paired)
    print(f"slurm / process wall time (paired by repeat): {out['slurm_over_process_wall']}")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":  # the process executor's workers import this module as __mp_main__
    main()
