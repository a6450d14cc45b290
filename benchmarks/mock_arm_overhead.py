"""Runner overhead per arm: 200 mock_sft arms (max_steps 1, 4 in-memory rows, jsonl log store) through
``run_experiment`` into a temp dir (``TMPDIR`` picks where); total / 200, median of 3 after a one-arm
warm-up that discovers plugins. User and system CPU split Python work from file-system calls."""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from typing import Any

from _bench import mock_matrix, report

from evsys_sdk.run.progress import Progress
from evsys_sdk.run.runner import run_experiment

ARMS = 200
RUNS = 3


def config(output_dir: str, arms: int) -> dict[str, Any]:
    return mock_matrix("mock_arm_overhead", output_dir, {"seed": list(range(arms))})


def run(arms: int) -> tuple[float, float, float]:
    """(wall, user CPU, system CPU) seconds to run ``arms`` arms; every one must complete."""
    with tempfile.TemporaryDirectory() as tmp:
        before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        results = run_experiment(config(tmp, arms), progress=Progress(arms, enabled=False))
        wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    if failed := [r for r in results if r.status != "completed"]:
        raise SystemExit(f"{len(failed)} arms did not complete, first: {failed[0].error}")
    return wall, after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime


run(1)
wall, user, system = (statistics.median(xs) * 1000 / ARMS for xs in zip(*(run(ARMS) for _ in range(RUNS)), strict=True))
report(
    "mock_arm_overhead",
    wall,
    "ms/arm",
    "<",
    20,
    {
        "arms": ARMS,
        "tempdir": tempfile.gettempdir(),
        "user_cpu_ms_per_arm": round(user, 2),
        "system_cpu_ms_per_arm": round(system, 2),
    },
)
