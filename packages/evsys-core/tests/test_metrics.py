"""Built-in metrics, both families (BEHAVIOR 1.15), and ``compute_metric``'s style dispatch."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from pydantic import ValidationError

from evsys_sdk.builtins import metrics
from evsys_sdk.builtins.metrics import (
    METRIC_CLASSES,
    Avg,
    ExactMatch,
    MeanReward,
    PassAt1,
    PassAt3,
    PassAtK,
    PassHat3,
    PassRate,
    ToolkitMatch,
    compute_metric,
)
from evsys_sdk.spec.protocols import Metric

REWARDS = [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.5], [], [1.0, 1.0, 1.0, 0.0]]


def test_classes_and_names() -> None:
    assert [c.name for c in METRIC_CLASSES] == [
        "mean_reward", "avg", "pass_rate", "pass_at_k", "pass@1", "pass@3", "pass^3", "exact_match", "toolkit_match",
    ]  # fmt: skip
    for cls in METRIC_CLASSES:
        instance = cls()
        assert isinstance(instance, Metric)
        with pytest.raises(ValidationError):
            cls(unknown_param=1)
    for name in metrics.__all__:
        assert hasattr(metrics, name), name


class TestRewardFamily:
    def test_mean_reward_is_a_macro_mean_over_non_empty_tasks(self) -> None:
        expected = (1 / 3 + 1 / 3 + 0.5 + 0.75) / 4
        assert MeanReward().compute(REWARDS) == pytest.approx(expected)
        assert MeanReward().compute(task_rewards=REWARDS) == pytest.approx(expected)
        assert Avg().compute(REWARDS) == pytest.approx(expected)
        assert isinstance(Avg(), MeanReward)

    def test_pass_rate_pools_samples(self) -> None:
        assert PassRate().compute(REWARDS) == pytest.approx(5 / 11)
        assert PassRate().compute([[0.99, 1.0, 2.0]]) == pytest.approx(2 / 3)  # passing means >= 1.0

    def test_pass_at_k_any_of_the_first_k(self) -> None:
        assert PassAt1().compute(REWARDS) == pytest.approx(2 / 4)
        assert PassAt3().compute(REWARDS) == pytest.approx(3 / 4)
        assert PassAtK(k=2).compute(REWARDS) == pytest.approx(2 / 4)
        assert PassAtK(k=10).compute(REWARDS) == pytest.approx(3 / 4)
        assert PassAtK().compute(REWARDS) == PassAt1().compute(REWARDS)

    def test_pass_hat_3_all_of_the_first_3(self) -> None:
        assert PassHat3().compute(REWARDS) == pytest.approx(1 / 4)
        # fewer than 3 samples: all of those present must pass
        assert PassHat3().compute([[1.0, 1.0], [1.0, 0.0]]) == pytest.approx(1 / 2)

    @pytest.mark.parametrize("cls", [MeanReward, Avg, PassRate, PassAt1, PassAt3, PassHat3, PassAtK])
    @pytest.mark.parametrize("empty", [[], [[]], [[], []]])
    def test_no_samples_is_zero(self, cls: type[Any], empty: list[list[float]]) -> None:
        assert cls().compute(empty) == 0.0

    def test_all_passing(self) -> None:
        perfect = [[1.0, 1.0, 1.0], [1.0]]
        for cls in (MeanReward, PassRate, PassAt1, PassAt3, PassHat3):
            assert cls().compute(perfect) == 1.0

    def test_k_of_the_fixed_classes_cannot_change(self) -> None:
        assert PassAt1().config.k == 1 and PassAt3().config.k == 3
        assert PassAt3(k=3).config.k == 3
        with pytest.raises(ValidationError):
            PassAt1(k=3)
        with pytest.raises(ValidationError):
            PassAt3(k=1)

    def test_k_must_be_positive(self) -> None:
        with pytest.raises(ValidationError):
            PassAtK(k=0)


class TestOlderFamily:
    def test_exact_match(self) -> None:
        predictions = [{"answer": "A"}, {"answer": "B"}, {"answer": "C"}]
        targets = [{"answer": "A"}, {"answer": "X"}, {"answer": "C"}]
        assert ExactMatch().compute(predictions=predictions, targets=targets) == pytest.approx(2 / 3)

    def test_exact_match_missing_answers_never_match(self) -> None:
        assert ExactMatch().compute(predictions=[{}, {"answer": None}], targets=[{}, {"answer": None}]) == 0.0

    def test_exact_match_length_mismatch(self) -> None:
        with pytest.raises(ValueError, match="exact_match: got 1 predictions but 0 targets"):
            ExactMatch().compute(predictions=[{"answer": "A"}], targets=[])

    def test_toolkit_match(self) -> None:
        predictions = [{"answer": "SLACK_SEND"}, {"answer": "WRONG_BAR"}, {"answer": "SLACKSEND"}, {"answer": "X_Y"}]
        targets = [{"toolkit": "SLACK"}, {"toolkit": "SLACK"}, {"toolkit": "SLACK"}, {"toolkit": ""}]
        assert ToolkitMatch().compute(predictions=predictions, targets=targets) == pytest.approx(1 / 4)
        assert ToolkitMatch().compute(predictions=[{"answer": None}], targets=[{"toolkit": "A"}]) == 0.0
        with pytest.raises(ValueError, match="toolkit_match: got 2 predictions but 1 targets"):
            ToolkitMatch().compute(predictions=predictions[:2], targets=targets[:1])

    def test_mean_reward(self) -> None:
        predictions = [{"reward": 1.0}, {"reward": 0.0}, {"reward": 0.5}, {}]
        assert MeanReward().compute(predictions=predictions, targets=[{}] * 4) == pytest.approx(1.5 / 4)
        assert Avg().compute(predictions=[{"reward": 0.2}]) == pytest.approx(0.2)  # targets are optional

    def test_pass_at_k(self) -> None:
        predictions = [{"samples": ["A", "B", "C"]}, {"samples": ["X", "B"]}, {"samples": ["A"]}]
        targets = [{"answer": "B"}, {"answer": "B"}, {"answer": "A"}]
        assert PassAtK(k=2).compute(predictions=predictions, targets=targets) == 1.0
        assert PassAtK(k=1).compute(predictions=predictions, targets=targets) == pytest.approx(1 / 3)
        assert PassAt1().compute(predictions=predictions, targets=targets) == pytest.approx(1 / 3)

    def test_pass_at_k_falls_back_to_the_answer(self) -> None:
        predictions: list[dict[str, Any]] = [
            {"answer": "A"},
            {"answer": "B", "samples": []},
            {"samples": None, "answer": "C"},
        ]
        targets = [{"answer": "A"}, {"answer": "B"}, {"answer": "Z"}]
        assert PassAtK(k=3).compute(predictions=predictions, targets=targets) == pytest.approx(2 / 3)

    def test_pass_at_k_length_mismatch_and_missing_targets(self) -> None:
        with pytest.raises(ValueError, match="pass_at_k: got 1 predictions but 2 targets"):
            PassAtK().compute(predictions=[{"answer": "A"}], targets=[{}, {}])
        with pytest.raises(TypeError, match=r"pass@3.compute\(predictions=...\) also needs targets"):
            PassAt3().compute(predictions=[{"answer": "A"}])

    @pytest.mark.parametrize("cls", [ExactMatch, ToolkitMatch, MeanReward, PassAtK])
    def test_empty_predictions_is_zero(self, cls: type[Any]) -> None:
        assert cls().compute(predictions=[], targets=[]) == 0.0


class TestDualStyle:
    @pytest.mark.parametrize("cls", [MeanReward, Avg, PassAtK, PassAt1, PassAt3])
    def test_exactly_one_style(self, cls: type[Any]) -> None:
        name = cls.name
        with pytest.raises(TypeError, match=f"{name}.compute takes either task_rewards or predictions/targets"):
            cls().compute()
        with pytest.raises(TypeError, match="exactly one"):
            cls().compute([[1.0]], predictions=[{"reward": 1.0}], targets=[{}])


class TestComputeMetric:
    PREDICTIONS: ClassVar[list[dict[str, Any]]] = [{"answer": "A", "reward": 1.0}, {"answer": "B", "reward": 0.0}]
    TARGETS: ClassVar[list[dict[str, Any]]] = [{"answer": "A"}, {"answer": "A"}]

    def test_reward_family(self) -> None:
        assert compute_metric(PassRate(), task_rewards=[[1.0, 0.0]]) == 0.5
        assert compute_metric(PassHat3(), task_rewards=[[1.0, 0.0]], predictions=self.PREDICTIONS) == 0.0

    def test_older_family(self) -> None:
        assert compute_metric(ExactMatch(), predictions=self.PREDICTIONS, targets=self.TARGETS) == 0.5
        both = compute_metric(ExactMatch(), task_rewards=[[0.0]], predictions=self.PREDICTIONS, targets=self.TARGETS)
        assert both == 0.5

    def test_dual_style_prefers_task_rewards(self) -> None:
        assert compute_metric(MeanReward(), task_rewards=[[0.25]], predictions=self.PREDICTIONS) == 0.25
        assert compute_metric(MeanReward(), predictions=self.PREDICTIONS, targets=self.TARGETS) == 0.5
        assert compute_metric(PassAt3(), predictions=self.PREDICTIONS, targets=self.TARGETS) == 0.5

    def test_third_party_signatures(self) -> None:
        class Positional:
            name: ClassVar[str] = "positional"

            def compute(self, rewards: list[list[float]]) -> float:
                return float(len(rewards))

        class KeywordOnlyRewards:
            name: ClassVar[str] = "kw_rewards"

            def compute(self, *, task_rewards: list[list[float]]) -> float:
                return float(sum(map(len, task_rewards)))

        class PredictionsOnly:
            name: ClassVar[str] = "predictions_only"

            def compute(self, *, predictions: list[dict[str, Any]]) -> float:
                return float(len(predictions))

        class PositionalPredictions:
            name: ClassVar[str] = "positional_predictions"

            def compute(self, predictions: list[dict[str, Any]], targets: list[dict[str, Any]]) -> float:
                return float(len(predictions) + len(targets))

        class Anything:
            name: ClassVar[str] = "anything"

            def compute(self, *args: Any, **kwargs: Any) -> float:
                return 1.0 if args else 2.0

        rewards = [[1.0, 0.0], [1.0]]
        assert compute_metric(Positional(), task_rewards=rewards) == 2.0
        assert compute_metric(KeywordOnlyRewards(), task_rewards=rewards) == 3.0
        assert compute_metric(PredictionsOnly(), predictions=self.PREDICTIONS, targets=self.TARGETS) == 2.0
        assert compute_metric(PositionalPredictions(), predictions=self.PREDICTIONS, targets=self.TARGETS) == 4.0
        assert compute_metric(Anything(), task_rewards=rewards) == 1.0
        assert compute_metric(Anything(), predictions=self.PREDICTIONS) == 2.0

    def test_nothing_fits(self) -> None:
        with pytest.raises(TypeError, match=r"^metric 'pass_rate' can't be computed: compute\(.*\) takes task_rewards, "
                           r"but predictions was given$"):  # fmt: skip
            compute_metric(PassRate(), predictions=self.PREDICTIONS, targets=self.TARGETS)
        with pytest.raises(TypeError, match="takes predictions/targets, but task_rewards was given"):
            compute_metric(ExactMatch(), task_rewards=[[1.0]])
        with pytest.raises(TypeError, match="takes task_rewards or predictions/targets, but no data was given"):
            compute_metric(MeanReward())

    def test_signature_without_known_parameters(self) -> None:
        class Odd:
            name: ClassVar[str] = "odd"

            def compute(self, a: int, b: int) -> float:
                return 0.0

        with pytest.raises(TypeError, match="takes neither task_rewards nor predictions/targets"):
            compute_metric(Odd(), task_rewards=[[1.0]])
