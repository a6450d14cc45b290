"""evsys_sdk.base.stats against reference values (scipy.stats 1.17, computed once and written down here)."""

from __future__ import annotations

import math
import statistics

import pytest

from evsys_sdk.base.stats import paired, summarize, t_cdf, t_quantile, welch

pytestmark = pytest.mark.timeout(30)

A = [1.288, 1.449, 0.066, -0.765, -1.092]
B = [1.063, -1.044, -1.874, 1.399]


@pytest.mark.parametrize(
    ("df", "q"),
    [
        (1, 12.7062047),
        (2, 4.3026527),
        (3, 3.1824463),
        (4.3, 2.7016949),
        (10, 2.2281389),
        (30, 2.0422725),
        (1e6, 1.959966),
    ],
)
def test_t_quantile_matches_tables(df: float, q: float) -> None:
    assert t_quantile(df) == pytest.approx(q, rel=1e-4)
    assert t_cdf(t_quantile(df), df) == pytest.approx(0.975, abs=1e-12)


def test_t_cdf_symmetry_and_limits() -> None:
    assert t_cdf(0.0, 3) == 0.5
    assert t_cdf(-2.0, 5) == pytest.approx(1 - t_cdf(2.0, 5))
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/pi
    assert t_cdf(1.96, math.inf) == pytest.approx(0.9750021)


def test_summarize_uses_student_t() -> None:
    s = summarize([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.ci95_high - 2.0 == pytest.approx(4.3026527 / 3**0.5) and s.half_width == pytest.approx(2.484138, 1e-6)
    one = summarize([5.0])
    assert (one.n, one.mean, one.std, one.ci95_low, one.ci95_high) == (1, 5.0, 0.0, 5.0, 5.0)
    with pytest.raises(ValueError):
        summarize([])


def test_welch_matches_scipy() -> None:
    c = welch(A, B)
    assert c is not None and c.test == "welch"
    assert c.diff == pytest.approx(statistics.fmean(A) - statistics.fmean(B))
    # scipy.stats.ttest_ind(A, B, equal_var=False) and its confidence_interval()
    assert c.df == pytest.approx(5.348013, rel=1e-6) and c.p_value == pytest.approx(0.7619525, abs=1e-6)
    assert (c.ci95_low, c.ci95_high) == (pytest.approx(-2.0944689, abs=1e-6), pytest.approx(2.7008689, abs=1e-6))
    assert not c.significant and c.to_json()["significant"] is False


def test_welch_separated_groups_are_significant() -> None:
    c = welch([0.74, 0.78, 0.70], [0.47, 0.50, 0.44])
    assert c is not None and c.significant and c.ci95_low > 0 and c.p_value < 0.01


def test_welch_degenerate_cases() -> None:
    assert welch([1.0], [2.0, 3.0]) is None
    same = welch([1.0, 1.0], [1.0, 1.0])
    assert same is not None and same.p_value == 1.0 and not same.significant
    apart = welch([2.0, 2.0], [1.0, 1.0])
    assert apart is not None and apart.p_value == 0.0 and apart.significant and apart.diff == 1.0


def test_paired_matches_scipy() -> None:
    c = paired(A[:4], B)
    assert c is not None and c.test == "paired" and c.df == 3
    # scipy.stats.ttest_rel(A[:4], B)
    assert c.t == pytest.approx(0.5954509, rel=1e-6) and c.p_value == pytest.approx(0.5934714, abs=1e-6)
    assert (c.ci95_low, c.ci95_high) == (pytest.approx(-2.7088573, abs=1e-6), pytest.approx(3.9558573, abs=1e-6))
    with pytest.raises(ValueError, match="equal lengths"):
        paired([1.0, 2.0], [1.0])
    assert paired([1.0], [2.0]) is None


def test_summarize_near_the_float_limit_does_not_overflow() -> None:
    s = summarize([1.7e308, 1.7e308])
    assert s.mean == 1.7e308 and s.std == 0.0
    wide = summarize([1.7e308, -1.7e308, 1e308])
    assert math.isfinite(wide.mean) and wide.ci95_low == -math.inf and wide.ci95_high == math.inf
