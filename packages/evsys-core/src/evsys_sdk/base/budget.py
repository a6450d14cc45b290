"""The per-arm budgets: the time budget ``run.max_seconds``, and the step an arm stops at (a search's rung).

Training algorithms honour it cooperatively: they call ``ctx.check_budget()`` once per step, which raises
``TimeBudgetExceeded`` once the run is past its budget; the runner turns that into a failed run whose
error is ``time budget exceeded after N s`` and whose metrics are the last values logged. Executors that
run arms in other processes (``process``, ``ray``) also enforce it hard: an arm still running
``kill_grace_seconds`` after its budget is killed and recorded the same way.

A search with ``search.fidelity`` stops an arm after a rung's step, once its in-loop validation has
scored that step: the arm raises ``StepLimitReached`` from ``ctx.validate`` and the runner records it
``stopped``, with the steps it ran as ``total_steps``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


def budget_message(seconds: float) -> str:
    """The error of an arm stopped by its budget."""
    return f"time budget exceeded after {seconds:g} s"


class TimeBudgetExceeded(BaseException):
    """The run is past ``run.max_seconds``.

    A BaseException (like KeyboardInterrupt), so an algorithm's ``except Exception`` around a step or a
    phase does not swallow the stop; the runner catches it.
    """

    def __init__(self, seconds: float):
        super().__init__(budget_message(seconds))
        self.seconds = seconds


class StepLimitReached(BaseException):
    """The arm trained the steps it was given (it stops at a search's rung): a BaseException for the
    same reason as ``TimeBudgetExceeded``."""

    def __init__(self, step: int, message: str):
        super().__init__(message)
        self.step = step


@dataclass(frozen=True)
class TimeBudget:
    """``seconds`` of wall time from ``start`` (``time.monotonic``)."""

    seconds: float
    start: float = field(default_factory=time.monotonic)

    def left(self) -> float:
        return self.seconds - (time.monotonic() - self.start)

    def check(self) -> None:
        if self.left() <= 0:
            raise TimeBudgetExceeded(self.seconds)
