"""What an experiment concludes, with the noise in view.

- **Best.** With seeded repeats the best is the replicate *group* with the best mean of the success
  metric, and its best arm; without repeats, the best arm.
- **How sure.** The best group's mean with its 95% CI and n, the runner-up's, and their difference
  with its 95% CI and Welch's t-test (unequal variances) at 95%. With one seed per arm no variance is
  known, and the conclusion says so.
- **Continual.** The final stage's score on every benchmark and the forgetting on each (best earlier
  stage minus final), with CIs over the chains when they are repeated.
- **Expectation.** ``metadata.expect: {metric, better: lower|higher, of: <param>}`` states the
  hypothesis: the conclusion says whether the data support it, by comparing the arms at the lowest and
  the highest value of ``of`` (Welch's t-test). When ``metric`` is the success metric, ``better`` also
  sets which way is best (default: higher).

Numbers keep the seeds' 4 decimals. Every function here is pure: results in, sentences out.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, ValidationError

from evsys_sdk.base.errors import ConfigError
from evsys_sdk.base.stats import Comparison, Summary, summarize, welch
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.results import ArmResult

__all__ = ["Expectation", "best_of", "conclude", "continual_findings", "group_scores"]

TEST = "Welch's t-test"


class Expectation(StrictModel):
    """``metadata.expect``: the hypothesis in a form the conclusion can judge."""

    metric: str = Field(min_length=1, description="the metric the hypothesis is about, e.g. train/final_loss")
    better: Literal["lower", "higher"] = Field(description="which direction of the metric is better")
    of: str | None = Field(
        default=None,
        description="the param it should improve with as it grows: a name in algorithm.params (lora_rank) "
        "or a dotted path into the run (algorithm.params.lora_rank)",
    )

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], source: Any = None) -> Expectation | None:
        """``metadata.expect`` checked; a mistake is a ConfigError naming file:line when ``source`` (the
        config's YAML source) is given."""
        from evsys_sdk.spec.source import format_problems

        raw = metadata.get("expect")
        if raw is None:
            return None
        if not isinstance(raw, dict):
            example = "{metric: train/final_loss, better: lower, of: lora_rank}"
            raise ConfigError(format_problems([(("metadata", "expect"), f"must be a mapping like {example}")], source))
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            from evsys_sdk.spec.problems import pydantic_problems

            problems = [(("metadata", "expect", *p), m) for p, m in pydantic_problems(exc, cls)]
            raise ConfigError(format_problems(problems, source)) from None


def sign(metric: str | None, expect: Expectation | None) -> float:
    """+1 when higher is better for ``metric``, -1 when ``metadata.expect`` says lower is."""
    return -1.0 if expect is not None and expect.metric == metric and expect.better == "lower" else 1.0


def _num(value: float) -> str:
    return f"{value:.4f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def group_scores(arms: list[ArmResult], metric: str) -> dict[str, list[float]]:
    """The success metric of each completed arm, by replicate group (an ungrouped arm is its own)."""
    groups: dict[str, list[float]] = {}
    for arm in arms:
        value = arm.score(metric) if arm.status == "completed" else None
        if value is not None:
            groups.setdefault(arm.group_name or arm.name, []).append(value)
    return groups


def best_of(
    arms: list[ArmResult], metric: str, expect: Expectation | None = None
) -> tuple[ArmResult | None, str | None]:
    """The best arm and, with repeats, its group: the group with the best mean, then its best arm."""
    s = sign(metric, expect)
    scored = [(a, v) for a in arms if a.status == "completed" and (v := a.score(metric)) is not None]
    if not scored:
        return None, None
    if not any(a.group_name for a, _ in scored):
        return max(scored, key=lambda av: s * av[1])[0], None
    means = {g: statistics.fmean(v) for g, v in group_scores(arms, metric).items()}
    best_group = max(means, key=lambda g: s * means[g])
    members = [(a, v) for a, v in scored if (a.group_name or a.name) == best_group]
    return max(members, key=lambda av: s * av[1])[0], best_group


def _summary(label: str, s: Summary) -> str:
    return f"{label} {_num(s.mean)} +- {_num(s.half_width)} (n={s.n})"


def _comparison(c: Comparison | None) -> str:
    if c is None:
        return "no variance is known for both, so no test"
    verdict = "significant" if c.significant else "not significant"
    return (
        f"difference {_signed(c.diff)}, 95% CI [{_num(c.ci95_low)}, {_num(c.ci95_high)}], "
        f"{verdict} at 95% ({TEST}, p={c.p_value:.3g})"
    )


def noise_sentence(arms: list[ArmResult], metric: str, best_group: str | None, expect: Expectation | None) -> str:
    """How sure the best is: the best group against the runner-up, or that no variance is known."""
    groups = group_scores(arms, metric)
    if best_group is None or best_group not in groups or max(map(len, groups.values())) < 2:
        noise = ", so differences between arms may be noise" if len(groups) > 1 else ""
        return f"One seed per arm: no variance is known{noise}."
    s = sign(metric, expect)
    best = summarize(groups[best_group])
    text = f"Best group: {_summary(best_group, best)} on {metric} (mean +- 95% CI)"
    others = {g: v for g, v in groups.items() if g != best_group}
    if not others:
        return f"{text}; no other group to compare."
    runner = max(others, key=lambda g: s * statistics.fmean(others[g]))
    versus = _comparison(welch(groups[best_group], others[runner]))
    return f"{text} vs runner-up {_summary(runner, summarize(others[runner]))}: {versus}."


def _param(arm: ArmResult, path: str) -> Any:
    data: Any = arm.run_config.model_dump(mode="json")
    if "." not in path:
        return (data.get("algorithm") or {}).get("params", {}).get(path)
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def expectation_sentence(arms: list[ArmResult], expect: Expectation) -> str:
    """Whether the data support ``metadata.expect``: arms at the highest ``of`` against the lowest."""
    want = f"{expect.better} {expect.metric}" + (f" with higher {expect.of}" if expect.of else "")
    if expect.of is None:
        return f"Expected {want}: best chosen accordingly."
    levels: dict[float, list[float]] = {}
    for arm in arms:
        value, level = (arm.score(expect.metric), _param(arm, expect.of)) if arm.status == "completed" else (None, None)
        if value is not None and isinstance(level, int | float) and not isinstance(level, bool):
            levels.setdefault(float(level), []).append(value)
    if len(levels) < 2:
        return f"Expected {want}: not testable, the completed arms do not vary {expect.of} with {expect.metric}."
    lo, hi = min(levels), max(levels)
    a, b = levels[hi], levels[lo]
    diff = statistics.fmean(a) - statistics.fmean(b)
    right_way = diff < 0 if expect.better == "lower" else diff > 0
    c = welch(a, b)
    means = (
        f"{expect.metric} {_num(statistics.fmean(b))} at {expect.of}={lo:g} -> {_num(statistics.fmean(a))} at {hi:g}"
    )
    if c is None:
        verdict = "the data point that way" if right_way else "the data point the other way"
        return f"Expected {want}: {verdict} ({means}), but with one arm per level no variance is known."
    if c.significant:
        verdict = "supported" if right_way else "contradicted"
    else:
        verdict = "not supported: the data lean that way, not significantly" if right_way else "not supported"
    return f"Expected {want}: {verdict} ({means}: {_comparison(c)})."


@dataclass
class BenchmarkFinding:
    """One benchmark at the end of a continual experiment: the final stage's score and the forgetting
    (best earlier stage minus final), each summarized over the chains."""

    benchmark: str
    final: Summary
    forgetting: Summary | None  # None when only one stage scored it


def _post_scores(arm: ArmResult, key: str) -> dict[str, float]:
    return {e.name: e.metrics[key] for e in arm.evals if e.step is None and key in e.metrics}


def continual_findings(arms: list[ArmResult], metric_key: str) -> tuple[str | None, list[BenchmarkFinding]]:
    """The final stage's label and, per benchmark, its final score and forgetting over the chains."""
    chains: dict[int, list[ArmResult]] = {}
    for arm in arms:
        if arm.stage is not None:
            chains.setdefault(arm.run_config.seed, []).append(arm)
    last = max((a.stage or 0 for a in arms if a.stage is not None), default=None)
    finals: dict[str, list[float]] = {}
    forgets: dict[str, list[float]] = {}
    label = None
    for chain in chains.values():
        by_stage = {a.stage: a for a in chain if a.status == "completed"}
        final_arm = by_stage.get(last)
        if final_arm is None:
            continue  # this chain stopped early: its last stage is not the experiment's
        label = final_arm.group_name or final_arm.name
        final_scores = _post_scores(final_arm, metric_key)
        earlier = [_post_scores(a, metric_key) for stage, a in by_stage.items() if stage != last]
        for bench, value in final_scores.items():
            finals.setdefault(bench, []).append(value)
            before = [s[bench] for s in earlier if bench in s]
            if before:
                forgets.setdefault(bench, []).append(max(before) - value)
    findings = [
        BenchmarkFinding(b, summarize(v), summarize(forgets[b]) if b in forgets else None) for b, v in finals.items()
    ]
    return label, findings


def continual_sentence(arms: list[ArmResult], metric_key: str) -> str | None:
    label, findings = continual_findings(arms, metric_key)
    if not findings:
        return None

    def show(s: Summary) -> str:
        return _num(s.mean) + (f" +- {_num(s.half_width)}" if s.n > 1 else "")

    repeated = max(f.final.n for f in findings) > 1
    finals = ", ".join(f"{f.benchmark}={show(f.final)}" for f in findings)
    forgets = ", ".join(f"{f.benchmark}={show(f.forgetting)}" for f in findings if f.forgetting is not None)
    text = f"Final stage {label} {metric_key}: {finals}"
    if forgets:
        gained = any(f.forgetting is not None and f.forgetting.mean < 0 for f in findings)
        text += f"; forgetting (best earlier stage minus final{', below 0: gained' if gained else ''}): {forgets}"
    return text + (f" (mean +- 95% CI over {max(f.final.n for f in findings)} chains)." if repeated else ".")


def conclude(
    arms: list[ArmResult],
    best: ArmResult | None,
    metric: str | None,
    *,
    best_group: str | None = None,
    expect: Expectation | None = None,
    continual: bool = False,
) -> str:
    """The seeds' sentences (``Best arm: X at m=V. k/n arms completed. Failed: a.`` or ``All N arms
    failed.``), then how sure the best is, the continual findings and the expectation's verdict."""
    done = [a for a in arms if a.status == "completed"]
    if not done:
        return f"All {len(arms)} arms failed."
    parts = []
    best_score = best.score(metric) if best is not None and metric else None
    if best is not None and metric and best_score is not None:
        parts.append(f"Best arm: {best.name} at {metric}={best_score:.4f}.")
    parts.append(f"{len(done)}/{len(arms)} arms completed.")
    failed = [a.name for a in arms if a.status != "completed"]
    if failed:
        parts.append(f"Failed: {', '.join(failed)}.")
    if best is not None and metric and not continual:
        parts.append(noise_sentence(arms, metric, best_group, expect))
    if continual:
        found = continual_sentence(arms, metric.rsplit(".", 1)[-1] if metric else "mean_reward")
        if found:
            parts.append(found)
    if expect is not None:
        parts.append(expectation_sentence(arms, expect))
    return " ".join(parts)
