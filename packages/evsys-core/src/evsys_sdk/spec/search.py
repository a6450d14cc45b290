"""The ``search:`` block of an experiment config, read by ``evsys evolve``.

These models import nothing from evsys, so ``evsys_sdk.spec.config`` types the block (and the YAML loader
reports its mistakes at file:line) without an import circle. What needs the installed extensions (do
the space's paths exist, do its ranges stay inside the fields' schema bounds) is checked by
``evsys_sdk.search.space`` before any arm starts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DISTRIBUTIONS = ("log_uniform", "uniform", "int_uniform", "choice")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Distribution(_Strict):
    """One axis of the space: exactly one of ``log_uniform: [lo, hi]``, ``uniform: [lo, hi]``,
    ``int_uniform: [lo, hi]`` (both ends included) or ``choice: [values]``."""

    log_uniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int_uniform: tuple[int, int] | None = None
    choice: list[Any] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> Distribution:
        given = [k for k in DISTRIBUTIONS if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of {', '.join(DISTRIBUTIONS)} (got {', '.join(given) or 'none'})")
        kind = given[0]
        if kind != "choice":
            low, high = getattr(self, kind)
            if not low < high:
                raise ValueError(f"{kind}: the low end must be below the high end (got [{low}, {high}])")
            if kind == "log_uniform" and low <= 0:
                raise ValueError(f"log_uniform needs a positive low end (got {low}); use uniform for ranges from 0")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in DISTRIBUTIONS if getattr(self, k) is not None)

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = getattr(self, self.kind)
        return float(low), float(high)


class ProposerSpec(_Strict):
    """A registered proposer (``evsys list --kind proposers``) and its params."""

    kind: str = "mutate"
    params: dict[str, Any] = Field(default_factory=dict)


class BudgetSpec(_Strict):
    """What the search may spend; it stops at the first limit reached. ``arm_seconds`` is every arm's
    time budget (``run.max_seconds``), so candidates are compared at equal compute."""

    candidates: int | None = Field(default=None, ge=1, description="candidates scored (rejected ones never count)")
    arms: int | None = Field(default=None, ge=1, description="arms run, confirmation arms included")
    seconds: float | None = Field(default=None, gt=0, description="arm seconds (train + eval) summed over arms")
    arm_seconds: float | None = Field(default=None, gt=0, description="each arm's time budget (run.max_seconds)")

    @model_validator(mode="after")
    def _bounded(self) -> BudgetSpec:
        if self.candidates is None and self.arms is None and self.seconds is None:
            raise ValueError("a search needs a limit: give budget.candidates, budget.arms or budget.seconds")
        return self


class PromotionSpec(_Strict):
    """When a candidate with a better mean replaces the incumbent best: ``mean`` (a better mean is
    enough) or ``paired`` (a one-sided paired t-test on the shared seeds must favour it at ``alpha``)."""

    rule: Literal["mean", "paired"] = "mean"
    alpha: float = Field(default=0.05, gt=0, lt=1)


class FidelitySpec(_Strict):
    """Multi-fidelity rungs (ASHA). Every candidate first trains to the first rung; it goes on to the next
    rung once it is in the top 1/``reduction`` of the results at its rung; the last rung is the whole run
    (the score the search compares). A rung is a step of the in-loop benchmark ``metadata.success_metric``
    names, so each is a multiple of its ``run_every``. A candidate goes on to a rung by training again
    from the start on the same schedule and seed, stopped at the rung's step: the steps it shares with its
    earlier rung are the same steps, and the budget is charged every step that ran."""

    rungs: list[int] = Field(min_length=2, description="training steps, increasing; the last is the whole run")
    reduction: int = Field(default=3, ge=2, description="the top 1/reduction of a rung's results go on")

    @model_validator(mode="after")
    def _increasing(self) -> FidelitySpec:
        if self.rungs[0] < 1 or any(b <= a for a, b in zip(self.rungs, self.rungs[1:], strict=False)):
            raise ValueError(f"rungs must be increasing positive steps, e.g. [50, 100, 200] (got {self.rungs})")
        return self


class SearchConfig(_Strict):
    """Search over the base ``run`` inside its extensions' schemas (``evsys evolve``)."""

    direction: Literal["maximize", "minimize"] = Field(default="maximize", description="of metadata.success_metric")
    proposer: ProposerSpec = Field(default_factory=ProposerSpec)
    budget: BudgetSpec
    parallel: int = Field(default=1, ge=1, description="candidates in flight (proposed together, one generation)")
    seed: int = Field(default=0, description="the search's own randomness")
    space: dict[str, Distribution] | Literal["auto"] = Field(
        description="dotted paths into the run -> distribution, or `auto` (from the extensions' schemas)"
    )
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)
    confirm_seeds: int = Field(default=0, ge=0, description="fresh seeds the final best is re-scored on")
    fidelity: FidelitySpec | None = Field(default=None, description="rungs on in-loop validation (ASHA)")
