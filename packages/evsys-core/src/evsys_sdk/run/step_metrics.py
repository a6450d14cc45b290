"""Forwarding a finished run's local ``metrics.jsonl`` to the tracking store."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from evsys_sdk.base.logger import get_logger

log = get_logger("step_metrics")
_META_KEYS = {"step", "ts", "split", "run_id", "epoch", "time"}

StepRow = tuple[int, str, dict[str, float]]


def find_metrics_file(run_dir: Path, metrics_file: str = "metrics.jsonl") -> Path | None:
    """``logs/metrics.jsonl``, else ``metrics.jsonl``, else the shallowest match below ``run_dir``."""
    for candidate in (run_dir / "logs" / metrics_file, run_dir / metrics_file):
        if candidate.is_file():
            return candidate
    found = sorted(run_dir.rglob(metrics_file), key=lambda p: len(p.parts))
    return found[0] if found else None


def read_step_rows(path: Path) -> list[StepRow]:
    """Rows ``(step, split, metrics)``; ``val/`` keys form their own rows with split "val"."""
    rows: list[StepRow] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict) or not isinstance(row.get("step"), int | float):
                continue
            source = (
                row["metrics"]
                if isinstance(row.get("metrics"), dict)
                else {k: v for k, v in row.items() if k not in _META_KEYS}
            )
            numeric = {k: float(v) for k, v in source.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            train = {k: v for k, v in numeric.items() if not k.startswith("val/")}
            val = {k: v for k, v in numeric.items() if k.startswith("val/")}
            rows += [(int(row["step"]), split, m) for split, m in (("train", train), ("val", val)) if m]
    return rows


def last_values(rows: list[StepRow]) -> dict[str, float]:
    """Each metric's last logged value (the partial metrics of a run stopped part-way)."""
    out: dict[str, float] = {}
    for _, _, metrics in sorted(rows, key=lambda r: r[0]):
        out.update(metrics)
    return out


def logged_metrics(run_dir: Path) -> dict[str, float]:
    """``last_values`` of the run's ``metrics.jsonl``; empty when it logged nothing."""
    path = find_metrics_file(run_dir) if run_dir.is_dir() else None
    return last_values(read_step_rows(path)) if path is not None else {}


def forward_step_metrics(
    store: Any,
    run_id: str | None,
    run_dir: Path | None,
    *,
    metrics_file: str = "metrics.jsonl",
    on_rows: Callable[[list[StepRow]], None] | None = None,
) -> int:
    """Send every step row to ``store``; returns the number of store calls made (0 when nothing to do)."""
    if run_dir is None:
        return 0
    path = find_metrics_file(run_dir, metrics_file)
    if path is None:
        return 0
    rows = read_step_rows(path)
    if on_rows is not None:
        on_rows(rows)
    return send_step_rows(store, run_id, rows)


def send_step_rows(store: Any, run_id: str | None, rows: list[StepRow]) -> int:
    """Record rows already read (an arm run elsewhere hands them back); the number of store calls made."""
    if store is None or run_id is None or not rows:
        return 0
    batch = getattr(store, "log_metrics_batch", None)
    if batch is not None:
        try:
            batch(run_id, rows)
            return 1
        except Exception:
            log.warning("forwarding %d step rows of run %s failed", len(rows), run_id, exc_info=True)
            return 0
    calls = 0
    for step, split, metrics in rows:
        try:
            store.log_metrics(run_id=run_id, step=step, metrics=metrics, split=split)
            calls += 1
        except Exception:
            log.warning("forwarding step %d of run %s failed", step, run_id, exc_info=True)
    return calls
