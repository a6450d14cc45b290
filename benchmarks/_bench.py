"""Shared helpers: one result line (or ``--json``) per benchmark, and subprocess timing."""

from __future__ import annotations

import json
import operator
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, NamedTuple

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
_OPS = {"<": operator.lt, "<=": operator.le, ">=": operator.ge}
_BASE_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
# Subprocesses read cached bytecode, as from an installed wheel, kept out of the source tree.
CACHED = {**_BASE_ENV, "PYTHONPYCACHEPREFIX": str(Path(tempfile.gettempdir()) / "evsys-bench-pycache")}
# Or write no bytecode (PYTHONDONTWRITEBYTECODE=1, as this machine's sessions set it): an editable checkout
# with no __pycache__ then compiles evsys_sdk from source on every start.
UNCACHED = {**_BASE_ENV, "PYTHONDONTWRITEBYTECODE": "1"}


def fmt(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def report(name: str, value: float, unit: str, op: str, limit: float, details: dict[str, Any], ok: bool = True) -> None:
    """Print ``name: value unit (budget: op limit unit, PASS|FAIL)`` or, with ``--json``, a JSON object.

    ``ok=False`` fails the benchmark whatever the figure (a broken invariant). Exits 1 on FAIL.
    """
    passed = ok and _OPS[op](value, limit)
    budget = f"{op} {limit:,g} {unit}"
    if "--json" in sys.argv[1:]:
        print(
            json.dumps(
                {"name": name, "value": round(value, 3), "unit": unit, "budget": budget, "pass": passed, **details}
            )
        )
    else:
        for key, detail in details.items():
            print(f"  {key}: {detail}", file=sys.stderr)
        print(f"{name}: {fmt(value)} {unit} (budget: {budget}, {'PASS' if passed else 'FAIL'})")
    sys.exit(0 if passed else 1)


class Timing(NamedTuple):
    wall: float  # ms
    cpu: float  # ms of user + system time: steadier than wall time when other work shares the cores


def timed(cmd: list[str], env: dict[str, str]) -> Timing:
    """One subprocess run from the repo root; raises if it fails."""
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(cmd, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Timing(wall * 1000, cpu * 1000)


def median_ms(
    cmds: dict[str, list[str]], runs: int, envs: dict[str, dict[str, str]] | None = None
) -> dict[str, Timing]:
    """Median wall and CPU time of each command, in the environment ``envs`` names for it (default CACHED);
    runs interleave so drift of this machine's speed hits every command alike."""
    env = {key: (envs or {}).get(key, CACHED) for key in cmds}
    for key, cmd in cmds.items():
        timed(cmd, env[key])  # warm-up: page cache, bytecode cache
    samples: dict[str, list[Timing]] = {key: [] for key in cmds}
    for _ in range(runs):
        for key, cmd in cmds.items():
            samples[key].append(timed(cmd, env[key]))
    return {key: Timing(*map(statistics.median, zip(*xs, strict=True))) for key, xs in samples.items()}


def mock_matrix(name: str, output_dir: str, axes: dict[str, list[Any]]) -> dict[str, Any]:
    """An experiment config: a matrix of one-step mock sft arms on 4 in-memory rows over ``axes``."""
    rows = [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(4)]
    return {
        "name": name,
        "output_dir": output_dir,
        "log_store": {"kind": "jsonl"},
        "matrix": {
            "base_run": {
                "name": "arm",
                "model": {"name": "tiny"},
                "backend": {"kind": "mock"},
                "algorithm": {"kind": "sft", "params": {"max_steps": 1}},
                "data": {"source_kind": "in_memory", "rows": rows},
            },
            "axes": axes,
        },
    }
