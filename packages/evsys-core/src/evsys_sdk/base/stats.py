"""Group statistics for seeded repeats: mean with its 95% confidence interval, and comparisons.

``summarize(values)`` is a group's n, mean, sample std and the two-sided 95% Student-t interval of its
mean. ``welch(a, b)`` compares two independent groups (Welch's unequal-variance t-test, with the
Welch-Satterthwaite degrees of freedom); ``paired(a, b)`` compares two groups measured on the same
seeds or tasks (a one-sample t-test of the differences). Both give the difference of means ``a - b``
with its 95% CI and a two-sided p-value; the difference is ``significant`` when the CI excludes 0
(p < 0.05). The Student-t distribution is computed here (regularized incomplete beta), so fractional
degrees of freedom are exact and no scipy is needed.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Comparison", "Summary", "paired", "summarize", "t_cdf", "t_quantile", "welch"]

LEVEL = 0.95  # every interval here is two-sided at this level


@dataclass(frozen=True)
class Summary:
    """A group of values: ``n``, ``mean``, sample ``std``, and the 95% CI of the mean (``ci95_low`` ..
    ``ci95_high``; zero width for n = 1, where no variance is known)."""

    n: int
    mean: float
    std: float
    ci95_low: float
    ci95_high: float

    @property
    def half_width(self) -> float:
        return (self.ci95_high - self.ci95_low) / 2

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: ``diff`` = mean(a) - mean(b), its 95% CI, the t statistic, the degrees of
    freedom, the two-sided p-value and whether the difference is significant at 95%. ``test`` names
    the test (``welch`` or ``paired``)."""

    test: str
    diff: float
    ci95_low: float
    ci95_high: float
    t: float
    df: float
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < 1 - LEVEL

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def summarize(values: Sequence[float]) -> Summary:
    """n, mean, sample std and the 95% t interval of the mean of ``values`` (at least one)."""
    n = len(values)
    if n == 0:
        raise ValueError("summarize needs at least one value")
    # Computed on values scaled into [-1, 1]: sums of values near the float limit would overflow; a
    # result past the limit comes out as inf.
    scale = max(abs(v) for v in values) or 1.0
    scaled = [v / scale for v in values]
    mean = statistics.fmean(scaled)
    std = statistics.stdev(scaled) if n > 1 else 0.0
    half = t_quantile(n - 1) * std / math.sqrt(n) if n > 1 else 0.0
    return Summary(n, mean * scale, std * scale, (mean - half) * scale, (mean + half) * scale)


def welch(a: Sequence[float], b: Sequence[float]) -> Comparison | None:
    """Welch's t-test of mean(a) - mean(b); None unless both groups have at least 2 values.

    Two groups without spread and with equal means give p = 1; with different means, p = 0.
    """
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    se = math.sqrt(va + vb)
    if se == 0:
        return _exact("welch", diff, math.inf)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return _compare("welch", diff, se, df)


def paired(a: Sequence[float], b: Sequence[float]) -> Comparison | None:
    """Paired t-test of a - b (same seeds or tasks, in the same order); None below 2 pairs."""
    if len(a) != len(b):
        raise ValueError(f"paired needs equal lengths (got {len(a)} and {len(b)})")
    if len(a) < 2:
        return None
    d = [x - y for x, y in zip(a, b, strict=True)]
    diff, se = statistics.fmean(d), statistics.stdev(d) / math.sqrt(len(d))
    if se == 0:
        return _exact("paired", diff, len(d) - 1)
    return _compare("paired", diff, se, len(d) - 1)


def _exact(test: str, diff: float, df: float) -> Comparison:
    """No spread at all: the difference is known exactly (significant unless it is 0)."""
    return Comparison(test, diff, diff, diff, math.copysign(math.inf, diff) if diff else 0.0, df, 0.0 if diff else 1.0)


def _compare(test: str, diff: float, se: float, df: float) -> Comparison:
    t = diff / se
    half = t_quantile(df) * se
    return Comparison(test, diff, diff - half, diff + half, t, df, 2 * (1 - t_cdf(abs(t), df)))


def t_cdf(x: float, df: float) -> float:
    """P(T <= x) for Student's t with ``df`` (> 0, fractional allowed) degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be > 0 (got {df})")
    if math.isinf(df):
        return 0.5 * math.erfc(-x / math.sqrt(2))
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + x * x))
    return 1 - tail if x > 0 else tail


def t_quantile(df: float, p: float = 1 - (1 - LEVEL) / 2) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (default: the two-sided 95% one)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1) (got {p})")
    if p < 0.5:
        return -t_quantile(df, 1 - p)
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:
        hi *= 2
    for _ in range(100):  # bisection: t_cdf is monotone, and 100 halvings reach float precision
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b), by its continued fraction (Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below the mean: use the symmetry
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
