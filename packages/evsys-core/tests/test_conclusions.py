"""Conclusions that respect noise: group-mean best, CIs, Welch's test, continual findings, metadata.expect."""

from __future__ import annotations

from typing import Any

import pytest

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.spec.results import ArmResult, EvalResult
from evsys_sdk.tracking.conclusions import Expectation, best_of, conclude, continual_findings

pytestmark = pytest.mark.timeout(30)


def arm(
    name: str,
    score: float | None,
    *,
    group: str | None = None,
    status: str = "completed",
    seed: int = 1,
    params: dict[str, Any] | None = None,
    stage: int | None = None,
    evals: dict[str, float] | None = None,
) -> ArmResult:
    run = RunConfig.model_validate(
        {"name": name, "model": {"name": "m"}, "algorithm": {"kind": "sft", "params": params or {}}, "seed": seed}
    )
    scored = evals if evals is not None else ({"test": score} if score is not None else {})
    return ArmResult(
        name=name,
        run_config=run,
        status=status,
        group_name=group,
        stage=stage,
        evals=[EvalResult(b, None, {"pass_rate": v}, tags=["test"]) for b, v in scored.items()],
    )


def seeded(group: str, scores: list[float], **kw: Any) -> list[ArmResult]:
    return [arm(f"{group}__s{i}", s, group=group, seed=i, **kw) for i, s in enumerate(scores)]


def test_best_is_the_group_with_the_best_mean_not_the_luckiest_seed() -> None:
    arms = seeded("rank4", [0.60, 0.40, 0.41]) + seeded("rank16", [0.55, 0.56, 0.54])
    best, group = best_of(arms, "test.pass_rate")
    assert group == "rank16" and best is not None and best.name == "rank16__s1"  # not rank4__s0 at 0.60
    text = conclude(arms, best, "test.pass_rate", best_group=group)
    assert text.startswith("Best arm: rank16__s1 at test.pass_rate=0.5600. 6/6 arms completed. Best group: rank16 ")
    assert "rank16 0.5500 +- 0.0248 (n=3) on test.pass_rate (mean +- 95% CI)" in text
    assert "vs runner-up rank4 0.4700 +- 0.2799 (n=3)" in text
    assert "difference +0.0800, 95% CI [" in text and "not significant at 95% (Welch's t-test, p=" in text


def test_a_clear_difference_is_significant() -> None:
    arms = seeded("rank16", [0.74, 0.78, 0.70]) + seeded("rank4", [0.47, 0.50, 0.44])
    best, group = best_of(arms, "test.pass_rate")
    text = conclude(arms, best, "test.pass_rate", best_group=group)
    assert "difference +0.2700" in text and ", significant at 95% (Welch's t-test, p=0.00" in text


def test_single_seed_says_no_variance_is_known() -> None:
    arms = [arm("a", 0.5), arm("b", 0.7), arm("c", None, status="failed")]
    best, group = best_of(arms, "test.pass_rate")
    assert best is not None and best.name == "b" and group is None
    assert conclude(arms, best, "test.pass_rate") == (
        "Best arm: b at test.pass_rate=0.7000. 2/3 arms completed. Failed: c. "
        "One seed per arm: no variance is known, so differences between arms may be noise."
    )


def test_all_failed_keeps_the_seed_sentence() -> None:
    arms = [arm("a", None, status="failed"), arm("b", None, status="failed")]
    assert conclude(arms, None, "test.pass_rate") == "All 2 arms failed."


def test_expect_lower_picks_the_lowest_and_judges_the_hypothesis() -> None:
    expect = Expectation.from_metadata({"expect": {"metric": "test.pass_rate", "better": "lower", "of": "lora_rank"}})
    arms = [
        arm(f"r{rank}_{i}", score, params={"lora_rank": rank})
        for rank, scores in ((8, [0.62, 0.60]), (32, [0.35, 0.33]))
        for i, score in enumerate(scores)
    ]
    best, _ = best_of(arms, "test.pass_rate", expect)
    assert best is not None and best.name == "r32_1"
    text = conclude(arms, best, "test.pass_rate", expect=expect)
    assert (
        "Expected lower test.pass_rate with higher lora_rank: supported "
        "(test.pass_rate 0.6100 at lora_rank=8 -> 0.3400 at 32: difference -0.2700" in text
    )
    contradicted = Expectation(metric="test.pass_rate", better="higher", of="lora_rank")
    assert "Expected higher test.pass_rate with higher lora_rank: contradicted" in conclude(
        arms, best, "test.pass_rate", expect=contradicted
    )


def test_expect_with_one_arm_per_level_says_so() -> None:
    expect = Expectation(metric="test.pass_rate", better="higher", of="algorithm.params.lora_rank")
    arms = [arm("a", 0.3, params={"lora_rank": 4}), arm("b", 0.5, params={"lora_rank": 16})]
    text = conclude(arms, arms[1], "test.pass_rate", expect=expect)
    assert "Expected higher test.pass_rate with higher algorithm.params.lora_rank: the data point that way" in text
    assert "no variance is known" in text


def test_bad_expect_is_one_config_error_line() -> None:
    with pytest.raises(ConfigError, match=r"metadata\.expect\.better"):
        Expectation.from_metadata({"expect": {"metric": "m", "better": "smaller"}})
    with pytest.raises(ConfigError, match="must be a mapping"):
        Expectation.from_metadata({"expect": "lower loss"})
    assert Expectation.from_metadata({}) is None


def _chain(seed: int, stages: list[dict[str, float]]) -> list[ArmResult]:
    return [
        arm(f"s{i}__s{seed}", None, group=f"s{i}", seed=seed, stage=i, evals=scores) for i, scores in enumerate(stages)
    ]


def test_continual_covers_every_benchmark_with_forgetting() -> None:
    arms = _chain(1, [{"a": 0.9, "b": 0.1}, {"a": 0.5, "b": 0.8}]) + _chain(
        2, [{"a": 0.8, "b": 0.2}, {"a": 0.6, "b": 0.9}]
    )
    label, findings = continual_findings(arms, "pass_rate")
    assert label == "s1"
    by = {f.benchmark: f for f in findings}
    assert by["a"].final.mean == pytest.approx(0.55) and by["a"].final.n == 2
    assert by["a"].forgetting is not None and by["a"].forgetting.mean == pytest.approx(0.3)  # (0.4 + 0.2) / 2
    assert by["b"].forgetting is not None and by["b"].forgetting.mean == pytest.approx(-0.7)  # learned, not forgot
    text = conclude(arms, arms[1], "a.pass_rate", continual=True)
    assert "Final stage s1 pass_rate: a=0.5500 +- " in text and ", b=0.8500 +- " in text
    assert "forgetting (best earlier stage minus final, below 0: gained): a=0.3000 +- " in text
    assert text.endswith("(mean +- 95% CI over 2 chains).")


def test_continual_single_chain_has_no_cis() -> None:
    arms = _chain(1, [{"a": 0.9}, {"a": 0.5, "b": 0.8}])
    text = conclude(arms, arms[1], "a.pass_rate", continual=True)
    assert text.endswith(
        "Final stage s1 pass_rate: a=0.5000, b=0.8000; forgetting (best earlier stage minus final): a=0.4000."
    )
