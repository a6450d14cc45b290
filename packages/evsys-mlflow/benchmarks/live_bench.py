"""What the live `mlflow` log store costs the training loop, against a real `mlflow server` (sqlite, loopback).

One arm of mock SFT that does no work per step (the worst case: logging is all the loop does), run as an
evsys experiment with its records in a LocalStore, alternately with `jsonl` alone and with
`multiplex [jsonl, mlflow]`, in pairs whose order swaps each time (this machine's speed drifts). The loop's
rate comes from the metrics file's own timestamps (first to last step), so the end of the run (the live
store's last flush, evsys's bookkeeping) is reported apart. The server runs at `nice 19`, standing in for
one on another machine (here it shares two cores with the loop); the end of a live arm waits at most 5 s
for its last batches. Prints steps/s of both and their ratio per pair, how many points had reached the
server when the arm ended (the rest is the export's: the tests check that it sends exactly those), then
the mean ratio with its 95% CI.

    pip install './packages/evsys-mlflow[test]'
    python packages/evsys-mlflow/benchmarks/live_bench.py [--pairs 5] [--steps 20000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from mlflow.tracking import MlflowClient

from evsys_sdk.base.stats import summarize
from evsys_sdk.orchestration.experiment import Experiment
from evsys_sdk.spec.config import ExperimentConfig
from evsys_sdk.tracking.store import LocalStore

sys.path.insert(0, str(Path(__file__).parents[1] / "tests"))
from mlflow_server import free_port, start_server, stop_server  # the tests' real server


def arm(root: Path, name: str, uri: str | None, steps: int) -> tuple[float, float]:
    """Run one arm: (steps/s of its loop, seconds from its last step to the end of the experiment)."""
    log_store: dict[str, Any] = {"kind": "jsonl"}
    if uri is not None:
        children = [{"kind": "jsonl"}, {"kind": "mlflow", "params": {"uri": uri, "close_timeout": 5}}]
        log_store = {"kind": "multiplex", "params": {"children": children}}
    cfg = {
        "name": name,
        "output_dir": str(root / name),
        "log_store": log_store,
        "run": {
            "name": "arm",
            "data": {"source_kind": "in_memory", "rows": [{"prompt": "1+1", "completion": "2"}]},
            "model": {"name": "mock-model"},
            "backend": {"kind": "mock"},
            "algorithm": {"kind": "mock_sft", "params": {"max_steps": steps}},
        },
    }
    store = LocalStore(root / "evsys.db")
    Experiment(ExperimentConfig.model_validate(cfg), store=store).run()
    ended = time.time()
    store.close()
    metrics = next((root / name / "arm").rglob("metrics.jsonl"))
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    return (len(lines) - 1) / (lines[-1]["ts"] - lines[0]["ts"]), ended - lines[-1]["ts"]


def sent_live(uri: str, name: str) -> int:
    """The arm's points on the server when its run ended (the rest is `evsys mlflow export`'s, as tested)."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id])
    child = next(r for r in runs if r.info.run_name == "arm")
    return len(client.get_metric_history(child.info.run_id, "train/loss"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "mlflow").mkdir()
        port = free_port()
        server = start_server(root / "mlflow", port, niceness=19)  # a server elsewhere: not the loop's CPU
        uri = f"http://127.0.0.1:{port}"
        try:
            arm(root, "warmup", uri, 1000)
            ratios, plains, lives = [], [], []
            print(f"{args.steps} steps, 1 metric per step; steps/s of the loop, seconds after its last step")
            for pair in range(args.pairs):
                names = [f"plain{pair}", f"live{pair}"]
                order = names if pair % 2 == 0 else names[::-1]
                rates = {n: arm(root, n, uri if n.startswith("live") else None, args.steps) for n in order}
                (plain, plain_end), (live, live_end) = rates[names[0]], rates[names[1]]
                ratios.append(live / plain)
                plains.append(plain)
                lives.append(live)
                sent = sent_live(uri, names[1])
                print(
                    f"pair {pair}: jsonl {plain:9,.0f} steps/s ({plain_end:.2f} s)  jsonl+mlflow {live:9,.0f} steps/s"
                    f" ({live_end:.2f} s, {sent} points live)  ratio {live / plain:.3f}"
                )
            s = summarize(ratios)
            extra = (1 / summarize(lives).mean - 1 / summarize(plains).mean) * 1e6
            print(
                f"live/plain steps/s: mean {s.mean:.3f}, 95% CI [{s.ci95_low:.3f}, {s.ci95_high:.3f}], n={s.n};"
                f" the live store adds {extra:.1f} us per logged step"
            )
        finally:
            stop_server(server)


if __name__ == "__main__":
    main()
