"""Scoring and promotion: a candidate's seeds' mean and 95% CI, and when a new best replaces the incumbent.

Every candidate is scored on the same seeds, so two candidates are compared seed by seed. Rule ``mean``
promotes a better mean; rule ``paired`` also asks a one-sided paired t-test on the shared seeds to
favour the newcomer at ``alpha``, so a "win" that is seed noise does not replace the incumbent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsys_sdk.base.stats import paired
from evsys_sdk.spec.search import PromotionSpec

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate


def paired_p_greater(a: list[float], b: list[float]) -> float:
    """One-sided p-value of mean(a - b) > 0 on the same seeds (1 below two pairs: nothing shown)."""
    comparison = paired(a, b)
    if comparison is None:
        return 1.0
    half = comparison.p_value / 2
    return half if comparison.diff > 0 else 1 - half


def promotes(new: Candidate, incumbent: Candidate | None, *, maximize: bool, rule: PromotionSpec) -> bool:
    """Whether ``new`` replaces ``incumbent`` as the best."""
    if new.status != "scored" or new.mean is None:
        return False
    if incumbent is None or incumbent.mean is None:
        return True
    if not (new.mean > incumbent.mean if maximize else new.mean < incumbent.mean):
        return False
    if rule.rule == "mean":
        return True
    a, b = (new.scores, incumbent.scores) if maximize else (incumbent.scores, new.scores)
    return paired_p_greater(a, b) < rule.alpha
