"""``evsys mlflow export NAME_OR_ID --uri URI [--experiment NAME]``."""

from __future__ import annotations

import argparse
import time

from evsys_mlflow.client import MlflowClient
from evsys_mlflow.export import Exporter
from evsys_sdk import find_experiment, open_store


def cmd_export(args: argparse.Namespace) -> int:
    store = open_store()
    experiment = find_experiment(store, args.experiment)
    client = MlflowClient(args.uri)
    started = time.perf_counter()
    try:
        summary = Exporter(store, client).export(experiment, args.mlflow_experiment)
    finally:
        client.close()
    seconds = time.perf_counter() - started
    already = summary.points_total - summary.points_sent
    print(
        f"OK: {experiment['name']} -> {args.uri} experiment {summary.experiment_id}, parent run"
        f" {summary.parent_run_id}: {summary.runs} arm runs, {summary.points_sent} metric points sent"
        f" ({already} already there) in {seconds:.1f} s"
    )
    return 0
