"""Built-in metrics in both API families; ``compute_metric`` calls either without knowing which.

* Reward family (docs vintage): ``compute(task_rewards) -> float`` reduces one list of sample rewards
  per task; a sample passes when its reward is >= 1.0. Tasks with no samples are not counted.
  Kinds: mean_reward, avg, pass_rate, pass@1, pass@3, pass^3.
* Older family: ``compute(*, predictions, targets) -> float`` over parallel lists of dicts; empty
  predictions score 0.0. Kinds: exact_match, toolkit_match, mean_reward, pass_at_k.

``mean_reward`` and the pass@k classes accept both styles (pass exactly one of ``task_rewards`` or
``predictions``), so configs of either vintage keep working.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.protocols import Metric

__all__ = [
    "METRIC_CLASSES",
    "PASS_THRESHOLD",
    "Avg",
    "ExactMatch",
    "MeanReward",
    "PassAt1",
    "PassAt3",
    "PassAtK",
    "PassHat3",
    "PassRate",
    "ToolkitMatch",
    "compute_metric",
]

PASS_THRESHOLD = 1.0

TaskRewards = Sequence[Sequence[float]]
Records = Sequence[Mapping[str, Any]]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _passes(reward: float) -> bool:
    return reward >= PASS_THRESHOLD


def _non_empty(task_rewards: TaskRewards) -> list[Sequence[float]]:
    return [rewards for rewards in task_rewards if rewards]


def _one_style(name: str) -> TypeError:
    return TypeError(f"{name}.compute takes either task_rewards or predictions/targets (exactly one)")


def _pairs(
    name: str, predictions: Records, targets: Records | None
) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    if targets is None:
        raise TypeError(f"{name}.compute(predictions=...) also needs targets")
    if len(predictions) != len(targets):
        raise ValueError(f"{name}: got {len(predictions)} predictions but {len(targets)} targets")
    return list(zip(predictions, targets, strict=True))


def _answer_in(candidates: Sequence[Any], target: Mapping[str, Any]) -> bool:
    # A target without an answer matches nothing (else a missing prediction answer would "match" it).
    answer = target.get("answer")
    return answer is not None and answer in candidates


class _Metric:
    name: ClassVar[str]

    class Config(StrictModel):
        """No params."""

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)


class MeanReward(_Metric):
    """Reward style: the mean over tasks of each task's mean sample reward (macro average).
    Older style: the mean of ``prediction["reward"]`` (missing counts as 0); targets are ignored."""

    name: ClassVar[str] = "mean_reward"

    def compute(
        self,
        task_rewards: TaskRewards | None = None,
        *,
        predictions: Records | None = None,
        targets: Records | None = None,  # accepted (unused) so older-style calls work unchanged
    ) -> float:
        if task_rewards is not None and predictions is None:
            return _mean([_mean(rewards) for rewards in _non_empty(task_rewards)])
        if predictions is not None and task_rewards is None:
            return _mean([float(p.get("reward") or 0.0) for p in predictions])
        raise _one_style(self.name)


class Avg(MeanReward):
    """Alias of ``mean_reward``."""

    name: ClassVar[str] = "avg"


class PassRate(_Metric):
    """Passing samples over all samples, pooled across tasks (micro average)."""

    name: ClassVar[str] = "pass_rate"

    def compute(self, task_rewards: TaskRewards) -> float:
        return _mean([1.0 if _passes(r) else 0.0 for rewards in task_rewards for r in rewards])


class PassAtK:
    """A task is solved when ANY of its first ``k`` attempts is right.

    Reward style: the share of tasks with a passing sample among their first ``k`` rewards.
    Older style: the share of predictions whose first ``k`` ``samples`` (else ``[answer]``) contain the
    target's ``answer``.
    """

    name: ClassVar[str] = "pass_at_k"

    class Config(StrictModel):
        k: int = Field(default=1, ge=1, description="samples per task the estimate is for (pass@k)")

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def compute(
        self,
        task_rewards: TaskRewards | None = None,
        *,
        predictions: Records | None = None,
        targets: Records | None = None,
    ) -> float:
        k = self.config.k
        if task_rewards is not None and predictions is None:
            tasks = _non_empty(task_rewards)
            return _mean([1.0 if any(map(_passes, rewards[:k])) else 0.0 for rewards in tasks])
        if predictions is None or task_rewards is not None:
            raise _one_style(self.name)
        if not predictions:
            return 0.0
        return _mean(
            [
                1.0 if _answer_in(list(p.get("samples") or [p.get("answer")])[:k], t) else 0.0
                for p, t in _pairs(self.name, predictions, targets)
            ]
        )


class PassAt1(PassAtK):
    """pass@1 (k fixed at 1)."""

    name: ClassVar[str] = "pass@1"

    class Config(PassAtK.Config):
        k: Literal[1] = Field(default=1, description="fixed at 1 (use pass_at_k for another k)")


class PassAt3(PassAtK):
    """pass@3 (k fixed at 3)."""

    name: ClassVar[str] = "pass@3"

    class Config(PassAtK.Config):
        k: Literal[3] = Field(default=3, description="fixed at 3 (use pass_at_k for another k)")


class PassHat3(_Metric):
    """pass^3 (consistency): the share of tasks whose first 3 samples ALL pass."""

    name: ClassVar[str] = "pass^3"
    k: ClassVar[int] = 3

    def compute(self, task_rewards: TaskRewards) -> float:
        tasks = _non_empty(task_rewards)
        return _mean([1.0 if all(map(_passes, rewards[: self.k])) else 0.0 for rewards in tasks])


class ExactMatch(_Metric):
    """The share of predictions whose ``answer`` equals the target's ``answer``."""

    name: ClassVar[str] = "exact_match"

    def compute(self, *, predictions: Records, targets: Records) -> float:
        if not predictions:
            return 0.0
        return _mean(
            [1.0 if _answer_in([p.get("answer")], t) else 0.0 for p, t in _pairs(self.name, predictions, targets)]
        )


class ToolkitMatch(_Metric):
    """The share of predictions whose ``answer`` starts with ``"<target toolkit>_"`` (tool slugs are
    prefixed by their toolkit); a target without a toolkit never matches."""

    name: ClassVar[str] = "toolkit_match"

    def compute(self, *, predictions: Records, targets: Records) -> float:
        if not predictions:
            return 0.0
        hits = []
        for p, t in _pairs(self.name, predictions, targets):
            toolkit, answer = t.get("toolkit"), p.get("answer")
            hits.append(1.0 if toolkit and isinstance(answer, str) and answer.startswith(f"{toolkit}_") else 0.0)
        return _mean(hits)


METRIC_CLASSES: tuple[type[Any], ...] = (
    MeanReward,
    Avg,
    PassRate,
    PassAtK,
    PassAt1,
    PassAt3,
    PassHat3,
    ExactMatch,
    ToolkitMatch,
)


def compute_metric(
    metric: Metric,
    *,
    task_rewards: TaskRewards | None = None,
    predictions: Records | None = None,
    targets: Records | None = None,
) -> float:
    """Call ``metric.compute`` in the style its signature accepts, given whatever data the caller has.

    Reward style (``task_rewards`` given) when ``compute`` has a ``task_rewards`` parameter or a single
    positional one; older style (``predictions``, plus ``targets`` when accepted) when it has a
    ``predictions`` parameter. A metric accepting both gets the reward style when ``task_rewards`` is
    given. TypeError when the metric takes none of the data given.
    """
    signature = inspect.signature(metric.compute)
    params = signature.parameters
    positional = [p for p in params.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    var_positional = any(p.kind is p.VAR_POSITIONAL for p in params.values())
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params.values())
    takes_rewards = (
        "task_rewards" in params
        or (len(positional) == 1 and positional[0].name not in ("predictions", "targets"))
        or var_positional
    )
    takes_predictions = "predictions" in params or var_keyword
    if task_rewards is not None and takes_rewards:
        rewards_param = params.get("task_rewards")
        if rewards_param is not None and rewards_param.kind is rewards_param.KEYWORD_ONLY:
            return float(metric.compute(task_rewards=task_rewards))
        return float(metric.compute(task_rewards))
    if predictions is not None and takes_predictions:
        kwargs: dict[str, Any] = {"predictions": predictions}
        if targets is not None and ("targets" in params or var_keyword):
            kwargs["targets"] = targets
        return float(metric.compute(**kwargs))
    takes = " or ".join(
        [s for s, ok in (("task_rewards", takes_rewards), ("predictions/targets", takes_predictions)) if ok]
    )
    given = " and ".join(
        [s for s, v in (("task_rewards", task_rewards), ("predictions", predictions)) if v is not None]
    )
    raise TypeError(
        f"metric '{getattr(metric, 'name', type(metric).__name__)}' can't be computed: "
        f"compute{signature.replace(return_annotation=signature.empty)} "
        f"takes {takes or 'neither task_rewards nor predictions/targets'}, but {given or 'no data'} was given"
    )
