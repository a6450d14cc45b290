"""Writes the example's data: 8 training sums, a benchmark of the same sums (seen) and two of unseen
sums (val, test).

Each is a Harbor task "What is A + B?" expecting ``<answer>A+B</answer>``, scored by
``gepa_partial_match`` (1 exact, 0.5 when the reply contains it). Run from the repo root:
``python examples/gepa/make_data.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from evsys_gepa.testing import toy_tasks

HERE = Path(__file__).resolve().parent
FILES = {
    HERE / "data" / "train.jsonl": toy_tasks(8, start=1, prefix="train"),
    HERE / "benchmarks" / "seen" / "tasks.jsonl": toy_tasks(8, start=1, prefix="train"),
    HERE / "benchmarks" / "val" / "tasks.jsonl": toy_tasks(4, start=40, prefix="val"),
    HERE / "benchmarks" / "test" / "tasks.jsonl": toy_tasks(10, start=100, prefix="test"),
}

if __name__ == "__main__":
    for path, rows in FILES.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        print(f"wrote {len(rows)} tasks to {path}")
