"""Scoring and promotion: a candidate's seeds' mean and 95% CI, and when a new best replaces the incumbent.

Every candidate is scored on the same seeds, so two candidates are compared seed by seed. Rule ``mean``
promotes a better mean; rule ``paired`` also asks a one-sided paired t-test on the shared seeds to
favour the newcomer at ``alpha``, so a "win" that is seed noise does not replace the incumbent.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from evsys_sdk.results import mean_ci
from evsys_sdk.search.config import PromotionSpec

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate


@dataclass(frozen=True)
class Summary:
    mean: float
    ci95_low: float
    ci95_high: float


def summary(values: list[float]) -> Summary:
    s = mean_ci(values)
    return Summary(s["mean"], s["ci95_low"], s["ci95_high"])


def paired_p_greater(a: list[float], b: list[float]) -> float:
    """One-sided p-value of mean(a - b) > 0 (paired t-test on the same seeds)."""
    d = [x - y for x, y in zip(a, b, strict=True)]
    mean = statistics.fmean(d)
    sd = statistics.stdev(d) if len(d) > 1 else 0.0
    if sd == 0:
        return 0.0 if mean > 0 else 1.0
    t = mean / (sd / math.sqrt(len(d)))
    return 1 - _t_cdf(t, len(d) - 1)


def _t_cdf(x: float, df: int) -> float:
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + x * x))
    return 1 - tail if x > 0 else tail


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta I_x(a, b) by its continued fraction."""
    if x <= 0 or x >= 1:
        return max(0.0, min(1.0, x))
    if x > (a + 1) / (a + b + 2):
        return 1 - _betainc(b, a, 1 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 300):
        for num in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return front * f / a


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
