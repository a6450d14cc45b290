"""The budget ledger: reserve before dispatch, settle when the arms end.

A job's arms are reserved before any is dispatched (and the confirmation arms at the start), so
the search never starts work the budget cannot pay for; they are settled with what actually ran. A
resumed search settles the arms that finished before the interruption once (their records are on
disk) and re-runs only the others: spent arms always equal the arms that ran to their end.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from evsys_sdk.spec.search import BudgetSpec


@dataclass
class Spent:
    """What the search has used. ``seconds`` are arm seconds (train + eval), summed; ``train_steps``
    and ``inference_calls`` count what arms report (``total_steps``, ``inference_calls`` metrics)."""

    candidates: int = 0
    arms: int = 0
    seconds: float = 0.0
    train_steps: int = 0
    inference_calls: int = 0
    rejected: int = 0

    def to_json(self) -> dict[str, float | int]:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


@dataclass
class ArmCost:
    seconds: float = 0.0
    train_steps: int = 0
    inference_calls: int = 0


class Ledger:
    """``budget`` for candidates scored on ``arms_per_candidate`` seeds, ``held`` arms set aside (confirmation)."""

    def __init__(self, budget: BudgetSpec, arms_per_candidate: int, held: int = 0):
        self.budget = budget
        self.per = arms_per_candidate
        self.held = held
        self.spent = Spent()
        self.reserved_candidates = 0
        self.reserved_arms = 0
        self.reserved_seconds = 0.0

    @property
    def arm_cost(self) -> float:
        """The seconds an arm reserves: its time budget when there is one (else unknown, 0)."""
        return self.budget.arm_seconds or 0.0

    def affordable(self, wanted: int, *, new: bool = True) -> int:
        """How many of ``wanted`` more candidates (``new``: else more jobs of candidates already counted,
        their next rung) the budget can still reserve."""
        b, n = self.budget, max(0, wanted)
        if new and b.candidates is not None:
            n = min(n, b.candidates - self.spent.candidates - self.reserved_candidates)
        if b.arms is not None:
            left = b.arms - self.held - self.spent.arms - self.reserved_arms
            n = min(n, left // self.per)
        if b.seconds is not None:
            left_s = b.seconds - self.spent.seconds - self.reserved_seconds - self.held * self.arm_cost
            if left_s <= 0:
                return 0
            if self.arm_cost:
                n = min(n, int(left_s // (self.per * self.arm_cost)))
        return max(0, n)

    def proposals_bought(self) -> int | None:
        """How many candidates the whole budget buys (None: only the seconds bound it, cost unknown)."""
        fresh = Ledger(self.budget, self.per, self.held)
        if self.budget.candidates is None and self.budget.arms is None and not self.arm_cost:
            return None
        return fresh.affordable(10**9)

    def reserve(self, candidates: int, arms: int | None = None) -> None:
        arms = candidates * self.per if arms is None else arms
        self.reserved_candidates += candidates
        self.reserved_arms += arms
        self.reserved_seconds += arms * self.arm_cost

    def release_held(self) -> None:
        """The confirmation arms become an ordinary reservation."""
        self.reserve(0, self.held)
        self.held = 0

    def settle(self, candidates: int, reserved_arms: int, ran: list[ArmCost]) -> None:
        """Close a reservation of ``candidates`` and ``reserved_arms`` with the arms that ran."""
        self.reserved_candidates -= candidates
        self.reserved_arms -= reserved_arms
        self.reserved_seconds -= reserved_arms * self.arm_cost
        self.spent.candidates += candidates
        self.spent.arms += len(ran)
        for cost in ran:
            self.spent.seconds += cost.seconds
            self.spent.train_steps += cost.train_steps
            self.spent.inference_calls += cost.inference_calls
