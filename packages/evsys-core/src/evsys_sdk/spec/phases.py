"""One step timeline per run, for algorithms that train in phases (``combo``, or any multi-phase one).

Each phase counts its steps from 1; its ``PhaseLogStore`` moves them onto the run's global, monotonic
timeline (offset by the steps of the phases before it) and adds ``phase`` (1-based) to every training
row, so one curve per run is drawn and readers mark the boundaries (``phase_starts``). In-loop
validation sees the global step too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

from evsys_sdk.spec.protocols import LogStore, RunContext

PHASE_KEY = "phase"

__all__ = ["PHASE_KEY", "PhaseLogStore", "phase_context", "phase_starts"]


class PhaseLogStore:
    """Logs one phase into the run's store at ``offset + step``; ``last_step`` is where the next phase
    starts counting. Validation-only rows (every key ``val/...``) carry no ``phase``: they are not
    training rows."""

    name: ClassVar[str] = "phase"

    def __init__(self, inner: LogStore, *, phase: int, offset: int):
        self._inner, self.phase, self.offset = inner, phase, offset
        self.last_step = offset

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        at = self.offset + int(step)
        self.last_step = max(self.last_step, at)
        training = any(not k.startswith("val/") for k in metrics)
        self._inner.log_metrics({**metrics, PHASE_KEY: self.phase} if training else metrics, at)

    def log_scalar(self, key: str, value: float, step: int) -> None:
        self.log_metrics({key: value}, step)

    def log_hyperparams(self, params: dict[str, Any]) -> None:
        self._inner.log_hyperparams(params)

    def log_artifact(self, name: str, path: str, *, kind: str = "file") -> None:
        self._inner.log_artifact(name, path, kind=kind)

    def close(self) -> None:
        """The run owns the store it wraps and closes it; a phase ending closes nothing."""


def phase_context(ctx: RunContext, *, phase: int, offset: int, **replace: Any) -> tuple[RunContext, PhaseLogStore]:
    """``ctx`` for one phase: its log store and validation callback on the global timeline."""
    store = PhaseLogStore(ctx.log_store, phase=phase, offset=offset)
    extras = dict(replace.pop("extras", ctx.extras))
    callback: Callable[..., None] | None = ctx.extras.get("on_validation_step")
    if callback is not None:
        # The parent context: validation logs through the run's store at the already global step.
        extras["on_validation_step"] = lambda _sub, step, client: callback(ctx, offset + step, client)
    return dataclasses.replace(ctx, log_store=store, extras=extras, **replace), store


def phase_starts(rows: Iterable[tuple[int, Mapping[str, Any]]]) -> list[tuple[int, int]]:
    """``(step, phase)`` where each phase after the first begins, from ``(step, metrics)`` rows."""
    starts: list[tuple[int, int]] = []
    current = None
    for step, metrics in sorted(rows, key=lambda r: r[0]):
        phase = metrics.get(PHASE_KEY)
        if isinstance(phase, int | float) and phase != current:
            if current is not None:
                starts.append((step, int(phase)))
            current = phase
    return starts
