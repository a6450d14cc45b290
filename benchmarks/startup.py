"""Start-up with every package installed: ``evsys --help`` beside ``trl --help`` (interleaved, median of 15,
same venv), and ``import evsys_sdk`` plus a registry look-up over bare interpreter start.

Run it with the interpreter of a venv that has all seven evsys packages and trl installed:

    pip install -e packages/evsys-core -e packages/evsys-dashboard -e packages/evsys-frontier \\
        -e packages/evsys-gepa -e packages/evsys-local -e packages/evsys-ray -e packages/evsys-tinker "torch==2.13.0"
"""

from __future__ import annotations

import json
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

from _bench import CACHED, PYTHON, REPO, median_ms, report

RUNS = 15
BIN = Path(PYTHON).parent
LOOKUP = "import evsys_sdk; evsys_sdk.list_algorithms()"  # discovery: every plugin's hooks and registrations
_LOADED = "import sys, json; print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"

plugins = sorted(ep.name for ep in entry_points(group="evsys_sdk.plugins"))
trl = BIN / "trl"
cmds = {
    "bare": [PYTHON, "-c", "pass"],
    "lookup": [PYTHON, "-c", LOOKUP],
    "evsys_help": [str(BIN / "evsys"), "--help"],
}
if trl.exists():
    cmds["trl_help"] = [str(trl), "--help"]
t = median_ms(cmds, RUNS)
loaded = set(
    json.loads(
        subprocess.run(
            [PYTHON, "-c", f"{LOOKUP}; {_LOADED}"], cwd=REPO, env=CACHED, check=True, capture_output=True, text=True
        ).stdout
    )
)
details = {
    "plugins_installed": plugins,
    "evsys_help_ms": round(t["evsys_help"].wall, 1),
    "evsys_help_cpu_ms": round(t["evsys_help"].cpu, 1),
    "interpreter_startup_ms": round(t["bare"].wall, 1),
    "import_plus_lookup_ms": round(t["lookup"].wall - t["bare"].wall, 1),
    "import_plus_lookup_cpu_ms": round(t["lookup"].cpu - t["bare"].cpu, 1),
    "modules_after_lookup": sorted(loaded & {"pydantic", "torch", "transformers", "trl", "ray", "httpx", "tinker"}),
}
if "trl_help" not in t:
    details["trl"] = f"not installed next to {PYTHON}: no ratio"
    report("startup", t["evsys_help"].wall, "ms evsys --help", "<", float("inf"), details)
details["trl_help_ms"] = round(t["trl_help"].wall, 1)
details["trl_help_cpu_ms"] = round(t["trl_help"].cpu, 1)
details["cpu_ratio"] = round(t["evsys_help"].cpu / t["trl_help"].cpu, 2)
report("startup", t["evsys_help"].wall / t["trl_help"].wall, "x trl --help", "<=", 1.0, details)
