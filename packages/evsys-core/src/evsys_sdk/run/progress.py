"""Terminal progress for long runs: arms done/total and the current step; silent when piped."""

from __future__ import annotations

import sys
import time
from typing import Any, ClassVar, TextIO

from evsys_sdk.spec.protocols import LogStore


class Progress:
    def __init__(self, total: int, stream: TextIO | None = None, *, enabled: bool | None = None, interval: float = 0.1):
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.done = 0
        self.current = ""
        self._last = 0.0
        self._interval = interval  # redraw at most this often: steps can be far faster than a terminal

    def start(self, name: str) -> None:
        self.current = name
        self._draw("starting", force=True)

    def step(self, step: int) -> None:
        self._draw(f"step {step}")

    def finish(self, status: str) -> None:
        self.done += 1
        self._draw(status, force=True)
        if self.enabled and self.done == self.total:
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, what: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self._interval):
            return
        self._last = now
        self.stream.write(f"\r\x1b[K[{self.done}/{self.total}] {self.current}: {what}")
        self.stream.flush()


class ProgressLogStore:
    """Forwards to the run's log store and reports each logged step to the progress line."""

    name: ClassVar[str] = "progress"

    def __init__(self, inner: LogStore, progress: Progress):
        self._inner = inner
        self._progress = progress

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._inner.log_metrics(metrics, step)
        self._progress.step(step)

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self._inner.log_scalar(key, value, step)
        self._progress.step(step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._inner.log_hyperparams(params)

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._inner.log_artifact(name, path, kind=kind)

    def close(self) -> None:
        self._inner.close()
