"""Experiment callbacks (loggers): notified as an experiment runs; failures never stop it.

A callback implements any subset of: ``on_experiment_start(name, config)``, ``on_group_start(group)``,
``on_run_start(arm, run_config)``, ``on_step_metrics(arm, rows)`` (rows of ``(step, split, metrics)``),
``on_benchmark_eval(arm, eval_result)``, ``on_run_end(arm_result)``, ``on_experiment_end(result)``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import CallbackSpec, StrictModel
from evsys_sdk.spec.params import FIXED

log = get_logger("callbacks")
EVENTS = (
    "on_experiment_start",
    "on_group_start",
    "on_run_start",
    "on_step_metrics",
    "on_benchmark_eval",
    "on_run_end",
    "on_experiment_end",
)


def _plain(value: Any) -> Any:
    """A JSON-friendly view of an event argument (configs and results are dumped, not repr'd)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if hasattr(value, "summary"):
        return value.summary()
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    return value


class JsonlCallback:
    """Every event as one JSON line in ``<output_dir>/events.jsonl``."""

    name: ClassVar[str] = "jsonl"

    class Config(StrictModel):
        path: str | None = Field(
            default=None, description="the events file (default: <output_dir>/events.jsonl)", json_schema_extra=FIXED
        )

    def __init__(self, *, output_dir: str = ".", **params: Any) -> None:
        self.config = self.Config(**params)
        self.path = Path(self.config.path or Path(output_dir) / "events.jsonl")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed at experiment end

    def _write(self, event: str, **data: Any) -> None:
        record = {"event": event, "ts": time.time(), **{k: _plain(v) for k, v in data.items()}}
        self._fh.write(json.dumps(record, default=str) + "\n")
        self._fh.flush()

    def on_experiment_start(self, name: str, config: Any) -> None:
        self._write("experiment_start", name=name, config=config)

    def on_group_start(self, group: str) -> None:
        self._write("group_start", group=group)

    def on_run_start(self, arm: str, run_config: Any) -> None:
        self._write("run_start", arm=arm, run_config=run_config)

    def on_step_metrics(self, arm: str, rows: list[tuple[int, str, dict[str, float]]]) -> None:
        self._write("step_metrics", arm=arm, rows=[{"step": s, "split": sp, "metrics": m} for s, sp, m in rows])

    def on_benchmark_eval(self, arm: str, eval_result: Any) -> None:
        self._write("benchmark_eval", arm=arm, eval=eval_result)

    def on_run_end(self, arm_result: Any) -> None:
        self._write(
            "run_end", arm=arm_result.name, status=arm_result.status, metrics=arm_result.metrics, error=arm_result.error
        )

    def on_experiment_end(self, result: Any) -> None:
        self._write(
            "experiment_end",
            name=result.name,
            status=result.status,
            conclusion=result.conclusion,
            best_arm=result.best_arm.name if result.best_arm else None,
            best_score=result.best_score,
        )
        self._fh.close()


class TensorBoardCallback:
    """Per-arm TensorBoard runs under ``<output_dir>/tensorboard/<arm>``: step curves and eval scores."""

    name: ClassVar[str] = "tensorboard"

    class Config(StrictModel):
        log_dir: str | None = Field(
            default=None, description="the event files' folder (default: under output_dir)", json_schema_extra=FIXED
        )

    def __init__(self, *, output_dir: str = ".", **params: Any) -> None:
        self.config = self.Config(**params)
        self.root = Path(self.config.log_dir or Path(output_dir) / "tensorboard")
        self._stores: dict[str, Any] = {}

    def _store(self, arm: str) -> Any:
        if arm not in self._stores:
            from evsys_sdk.builtins.log_stores import TensorBoardLogStore

            self._stores[arm] = TensorBoardLogStore(log_dir=str(self.root / arm.replace("/", "_")), flush_secs=1)
        return self._stores[arm]

    def on_step_metrics(self, arm: str, rows: list[tuple[int, str, dict[str, float]]]) -> None:
        for step, _split, metrics in rows:
            self._store(arm).log_metrics(metrics, step)

    def on_benchmark_eval(self, arm: str, eval_result: Any) -> None:
        scores = {f"eval/{eval_result.name}/{k}": v for k, v in eval_result.metrics.items()}
        self._store(arm).log_metrics(scores, eval_result.step or 0)

    def on_experiment_end(self, result: Any) -> None:
        for store in self._stores.values():
            store.close()


CALLBACK_CLASSES: tuple[type[Any], ...] = (JsonlCallback, TensorBoardCallback)


class CallbackSet:
    """Dispatches events to every configured callback, logging (never raising) their failures."""

    def __init__(self, specs: list[CallbackSpec], output_dir: str):
        from evsys_sdk.plugins.registry import registry

        self.callbacks = [registry("callback").get(s.kind)(output_dir=output_dir, **s.params) for s in specs]

    def emit(self, event: str, *args: Any) -> None:
        for cb in self.callbacks:
            method = getattr(cb, event, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception:
                log.warning("callback %s.%s failed", type(cb).__name__, event, exc_info=True)
