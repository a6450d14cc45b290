"""``evsys validate --deep`` on the quickstart example: CLI wall time in a subprocess (median of 10),
the same minus bare interpreter start-up, its ratio to the peer floor (a process that only imports the
CLI's third-party dependencies and validates one pydantic model), and ``validate_yaml(path, deep=True)``
in-process after warm-up (median of 50)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from _bench import PYTHON, REPO, UNCACHED, median_ms, report

RUNS = 10
IN_PROCESS_RUNS = 50
CONFIG = "examples/quickstart/config.yaml"
EVSYS = str(Path(PYTHON).parent / "evsys")  # the console script of the interpreter running this
FLOOR = """
import argparse, importlib.metadata, pluggy, yaml
from pydantic import BaseModel
class Model(BaseModel):
    x: int
Model.model_validate({"x": 1})
"""


def in_process_ms() -> float:
    """Median time of validate_yaml(deep=True) in this process after a warm-up call, in ms."""
    from evsys_sdk import validate_yaml

    path = REPO / CONFIG
    if problems := validate_yaml(path, deep=True):
        raise SystemExit(f"{CONFIG} does not validate: {problems}")
    samples = []
    for _ in range(IN_PROCESS_RUNS):
        start = time.perf_counter()
        validate_yaml(path, deep=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


cli = [EVSYS, "validate", "--deep", CONFIG]
t = median_ms(
    {"bare": [PYTHON, "-c", "pass"], "cli": cli, "floor": [PYTHON, "-c", FLOOR], "cli_nobc": cli},
    RUNS,
    {"cli_nobc": UNCACHED},
)
report(
    "validate_deep",
    t["cli"].wall,
    "ms",
    "<",
    300,
    {
        "interpreter_startup_ms": round(t["bare"].wall, 1),
        "cli_minus_startup_ms": round(t["cli"].wall - t["bare"].wall, 1),
        "cli_cpu_ms": round(t["cli"].cpu, 1),
        "peer_floor_ms": round(t["floor"].wall, 1),
        "cli_over_floor_ratio": round(t["cli"].wall / t["floor"].wall, 2),
        "cli_no_bytecode_ms": round(t["cli_nobc"].wall, 1),
        "in_process_warm_ms": round(in_process_ms(), 2),
    },
)
