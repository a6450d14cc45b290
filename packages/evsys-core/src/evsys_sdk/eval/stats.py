"""pass@k estimators and standard errors.

The first-k definitions (BEHAVIOR 1.15: pass@k = any of the first k samples passes, pass^k = all of
them pass) depend on sample order and waste samples beyond k. With n samples of a task of which c
pass, the unbiased estimators use all of them:

    pass@k = 1 - C(n-c, k) / C(n, k)        pass^k = C(c, k) / C(n, k)

(Chen et al. 2021, "Evaluating Large Language Models Trained on Code"). Every rate is a mean over
tasks, reported with its standard error: the sample standard deviation of the per-task values over
sqrt(number of tasks); pooled rates (pass_rate) use the cluster-robust (by task) form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = [
    "estimate_rates",
    "pass_at_k_unbiased",
    "pass_hat_k_unbiased",
    "ratio_standard_error",
    "standard_error",
]


def _check(n: int, c: int, k: int) -> None:
    if n < 0 or not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (got n={n}, c={c}, k={k})")


def pass_at_k_unbiased(n: int, c: int, k: int) -> float:
    """P(at least one of k samples drawn without replacement from n passes), c of n passing.

    With fewer samples than k (n < k) the estimator is undefined; this returns whether any of the n
    passed (the first-k definition). n = 0 gives 0.0.
    """
    _check(n, c, k)
    if n == 0:
        return 0.0
    if n < k:
        return 1.0 if c > 0 else 0.0
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k_unbiased(n: int, c: int, k: int) -> float:
    """P(all k samples drawn without replacement from n pass); for n < k, whether all n passed."""
    _check(n, c, k)
    if n == 0:
        return 0.0
    if n < k:
        return 1.0 if c == n else 0.0
    return math.comb(c, k) / math.comb(n, k)


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean of ``values`` (sample standard deviation / sqrt(n)); 0 for n < 2."""
    n = len(values)
    if n < 2:
        return 0.0
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1) / n)


def ratio_standard_error(numerators: Sequence[float], denominators: Sequence[float]) -> float:
    """Cluster-robust standard error of sum(numerators) / sum(denominators), one pair per cluster."""
    m, total = len(numerators), sum(denominators)
    if m < 2 or total <= 0:
        return 0.0
    ratio = sum(numerators) / total
    spread = sum((x - ratio * d) ** 2 for x, d in zip(numerators, denominators, strict=True))
    return math.sqrt(spread * m / (m - 1)) / total


def estimate_rates(
    task_rewards: Iterable[Sequence[float]], *, ks: Iterable[int] = (1,), threshold: float = 1.0
) -> dict[str, float]:
    """Every rate with its standard error (``<name>_se``) from one reward list per task.

    Names: mean_reward, pass_rate, and for each k: ``pass@k`` / ``pass^k`` (first k samples) and
    ``pass@k_unbiased`` / ``pass^k_unbiased``. Tasks without samples are not counted.
    """
    tasks = [list(r) for r in task_rewards if len(r)]
    passes = [[x >= threshold for x in r] for r in tasks]
    out: dict[str, float] = {"n_tasks": float(len(tasks))}

    def add(name: str, values: Sequence[float]) -> None:
        out[name] = sum(values) / len(values) if values else 0.0
        out[f"{name}_se"] = standard_error(values)

    add("mean_reward", [sum(r) / len(r) for r in tasks])
    nums, dens = [float(sum(p)) for p in passes], [float(len(p)) for p in passes]
    out["pass_rate"] = sum(nums) / sum(dens) if tasks else 0.0
    out["pass_rate_se"] = ratio_standard_error(nums, dens)
    for k in sorted(set(ks)):
        add(f"pass@{k}", [float(any(p[:k])) for p in passes])
        add(f"pass^{k}", [float(all(p[:k])) for p in passes])
        add(f"pass@{k}_unbiased", [pass_at_k_unbiased(len(p), sum(p), k) for p in passes])
        add(f"pass^{k}_unbiased", [pass_hat_k_unbiased(len(p), sum(p), k) for p in passes])
    return out
