"""Run every benchmark in its own subprocess and print a markdown table; exit 1 if any fails."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from _bench import PYTHON, fmt

HERE = Path(__file__).resolve().parent
SCRIPTS = sorted(p for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py")


def run(script: Path) -> list[str]:
    """One table row: name, figure, budget, status."""
    proc = subprocess.run([PYTHON, str(script), "--json"], capture_output=True, text=True)
    try:
        r = json.loads(proc.stdout.splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        error = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        return [script.stem, "-", "-", f"ERROR: {error}"]
    return [r["name"], f"{fmt(r['value'])} {r['unit']}", r["budget"], "PASS" if r["pass"] else "FAIL"]


rows = []
for script in SCRIPTS:
    print(f"running {script.name} ...", file=sys.stderr, flush=True)
    rows.append(run(script))
print("| benchmark | result | budget | status |\n|---|---|---|---|")
for row in rows:
    print(f"| {' | '.join(row)} |")
sys.exit(0 if all(row[3] == "PASS" for row in rows) else 1)
