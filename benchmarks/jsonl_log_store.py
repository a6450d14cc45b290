"""JSONLLogStore.log_metrics throughput: 10-scalar dicts for 2 s of calls into a temp dir, in scalars/s."""

from __future__ import annotations

import tempfile
import time

from _bench import report

from evsys_sdk.builtins.log_stores import JSONLLogStore

SECONDS = 2.0
BATCH = 500  # calls between clock reads
METRICS = {f"train/metric_{i}": 0.1 * i + 1e-3 for i in range(10)}

with tempfile.TemporaryDirectory() as tmp:
    store = JSONLLogStore(log_dir=tmp)
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < SECONDS:
        for step in range(calls, calls + BATCH):
            store.log_metrics(METRICS, step)
        calls += BATCH
    store.close()
    with store.metrics_path.open(encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
if lines != calls:
    raise SystemExit(f"wrote {lines} lines for {calls} calls")
report(
    "jsonl_log_store",
    calls * len(METRICS) / elapsed,
    "scalars/s",
    ">=",
    200_000,
    {
        "calls": calls,
        "seconds": round(elapsed, 3),
        "us_per_call": round(elapsed / calls * 1e6, 2),
    },
)
