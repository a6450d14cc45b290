"""``import evsys_sdk`` cost: subprocess wall time minus bare interpreter start-up (median of 15),
the ``-X importtime`` cumulative figure, and no heavy third-party module after a registry look-up."""

from __future__ import annotations

import json
import statistics
import subprocess

from _bench import CACHED, PYTHON, REPO, UNCACHED, median_ms, report

RUNS = 15
HEAVY = ("torch", "transformers", "trl", "peft", "tinker", "anthropic", "openai", "gepa", "datasets")
_LOADED = "import sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"


def run(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, *args], cwd=REPO, env=CACHED, check=True, capture_output=True, text=True)


def importtime_ms() -> float:
    """``-X importtime`` cumulative microseconds of the top-level evsys_sdk import, in ms."""
    err = run(["-X", "importtime", "-c", "import evsys_sdk"]).stderr
    cumulative = next(line.split("|")[1] for line in err.splitlines() if line.split("|")[-1].strip() == "evsys_sdk")
    return int(cumulative) / 1000


def loaded(code: str) -> set[str]:
    return set(json.loads(run(["-c", f"{code}; {_LOADED}"]).stdout))


CODE = {"bare": "pass", "import": "import evsys_sdk", "lookup": "import evsys_sdk; evsys_sdk.list_algorithms()"}
cmds = {key: [PYTHON, "-c", code] for key, code in CODE.items()}
t = median_ms(
    {**cmds, "bare_nobc": cmds["bare"], "lookup_nobc": cmds["lookup"]},
    RUNS,
    {"bare_nobc": UNCACHED, "lookup_nobc": UNCACHED},
)
after_lookup = loaded(CODE["lookup"])
heavy = sorted(after_lookup.intersection(HEAVY))
report(
    "import_time",
    t["import"].wall - t["bare"].wall,
    "ms",
    "<",
    100,
    {
        "interpreter_startup_ms": round(t["bare"].wall, 1),
        "import_wall_ms": round(t["import"].wall, 1),
        "import_cpu_ms": round(t["import"].cpu - t["bare"].cpu, 1),
        "importtime_cumulative_ms": round(statistics.median(importtime_ms() for _ in range(RUNS)), 1),
        "import_plus_list_algorithms_ms": round(t["lookup"].wall - t["bare"].wall, 1),
        "import_plus_list_algorithms_cpu_ms": round(t["lookup"].cpu - t["bare"].cpu, 1),
        "import_plus_list_algorithms_no_bytecode_ms": round(t["lookup_nobc"].wall - t["bare_nobc"].wall, 1),
        "pydantic_after_import": "pydantic" in loaded(CODE["import"]),
        "pydantic_after_list_algorithms": "pydantic" in after_lookup,
        "heavy_modules_after_list_algorithms": heavy,
    },
    ok=not heavy,
)
