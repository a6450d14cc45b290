"""Crash safety: kill -9 a 100-candidate mock search at random points, resume, compare.

The reference is one uninterrupted ``evsys evolve`` of a 100-candidate search (mutate, 2 in flight, one
seed per candidate) whose arms run through ``Experiment`` and the sequential executor (the synthetic
objective, logging each arm's end). Then, 10 times, the same search starts in a fresh workspace, gets
SIGKILL at a random point (after a random number of arms, plus up to 50 ms), and ``evsys evolve
--resume`` finishes it. Each
resumed search must equal the reference: the same candidates (ids, patches, parents, operators) and
scores, the same ``spent`` arms and candidates, every run recorded once in the store, and no arm run
twice except the one the kill interrupted mid-arm (an unfinished arm is re-run, once). The figure is the
number of trials that differ (budget: 0).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from _bench import PYTHON, report

TRIALS = 10
SCRIPT = (
    "import sys; from evsys_sdk.plugins.host import current_host; from evsys_sdk.testing import search as kit;"
    "current_host().add_plugin(kit, 'search_kit'); from evsys_sdk.cli.main import main; sys.exit(main(sys.argv[1:]))"
)


def config(root: Path) -> dict[str, Any]:
    return {
        "name": "crash",
        "output_dir": str(root / "out"),
        "metadata": {"success_metric": "score"},
        "run": {
            "name": "r",
            "data": {"source_kind": "in_memory", "rows": [{"q": 1}]},
            "model": {"name": "none"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "synthetic", "params": {"objective": "ridge", "arm_log": str(root / "arms.log")}},
        },
        "search": {
            "proposer": {"kind": "mutate"},
            "budget": {"candidates": 100},
            "parallel": 2,
            "seed": 7,
            "space": {
                "algorithm.params.x": {"uniform": [-5, 5]},
                "algorithm.params.learning_rate": {"log_uniform": [1e-5, 1e-1]},
                "algorithm.params.depth": {"int_uniform": [1, 12]},
                "algorithm.params.activation": {"choice": ["relu", "gelu", "tanh", "sigmoid"]},
            },
        },
    }


def evsys(root: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "EVSYS_WORKSPACE": str(root / "ws")}
    return subprocess.Popen(
        [PYTHON, "-c", SCRIPT, *args], cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def outcome(root: Path) -> tuple[dict[str, Any], Counter[str], int]:
    """The search as `evsys evolve show --json` prints it, each arm's end count, the store's run rows."""
    shown = evsys(root, "evolve", "show", "crash", "--json")
    out, err = shown.communicate(timeout=120)
    assert shown.returncode == 0, err
    ends = Counter(x.split()[1] for x in (root / "arms.log").read_text().splitlines() if x.startswith("end "))
    import sqlite3

    rows = (
        sqlite3.connect(root / "ws" / "evsys.db").execute("SELECT COUNT(*), COUNT(DISTINCT name) FROM runs").fetchone()
    )
    assert rows[0] == rows[1], f"{rows[0]} run rows for {rows[1]} arms"
    return json.loads(out), ends, rows[0]


def _ended(log: Path) -> int:
    return sum(x.startswith("end ") for x in log.read_text().splitlines()) if log.exists() else 0


def comparable(shown: dict[str, Any]) -> Any:
    return (
        [(c["id"], c["parents"], c["operator"], c["patch"], c["scores"], c["status"]) for c in shown["candidates"]],
        shown["best"]["id"] if shown["best"] else None,
        {k: v for k, v in shown["spent"].items() if k != "seconds"},
    )


def main() -> None:
    rng = random.Random(0)
    details: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref_root = Path(tmp) / "reference"
        ref_root.mkdir()
        (ref_root / "c.yaml").write_text(yaml.safe_dump(config(ref_root)))
        start = time.perf_counter()
        proc = evsys(ref_root, "evolve", "c.yaml")
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        wall = time.perf_counter() - start
        reference, ref_ends, _ = outcome(ref_root)
        assert len(reference["candidates"]) == 100 and set(ref_ends.values()) == {1}
        details["reference"] = f"100 candidates, {reference['spent']['arms']} arms in {wall:.1f} s"
        differ = 0
        for trial in range(TRIALS):
            root = Path(tmp) / f"trial{trial}"
            root.mkdir()
            (root / "c.yaml").write_text(yaml.safe_dump(config(root)))
            # A random point inside the search: once a random number of arms ended, plus up to 50 ms more
            # (so the kill lands in an arm, between arms, or in the journal writes).
            target, extra = rng.randint(1, 98), rng.uniform(0, 0.05)
            log = root / "arms.log"
            proc = evsys(root, "evolve", "c.yaml")
            started = time.perf_counter()
            while _ended(log) < target and proc.poll() is None:
                time.sleep(0.002)
            time.sleep(extra)
            delay = time.perf_counter() - started
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            before = _ended(log)
            proc = evsys(root, "evolve", "c.yaml", "--resume")
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err
            shown, ends, rows = outcome(root)
            twice = sorted(a for a, n in ends.items() if n > 1)
            same = comparable(shown) == comparable(reference)
            ok = same and len(twice) <= 1 and rows == shown["spent"]["arms"] and set(ends) == set(ref_ends)
            differ += not ok
            details[f"trial {trial}"] = (
                f"killed after {delay:.2f} s ({before} arms ended); resumed {'==' if same else '!='} reference; "
                f"re-run after the kill: {', '.join(twice) or 'none'}; {rows} run rows"
            )
    report("evolve_kill9_resume_mismatches", differ, "trials", "<", 1, details)


if __name__ == "__main__":
    main()
