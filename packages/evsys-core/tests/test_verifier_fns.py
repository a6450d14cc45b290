"""In-process verifier functions and ``verify_task`` (BEHAVIOR 1.14), plus the format_only verifier."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from evsys_sdk.builtins import verifier_fns
from evsys_sdk.builtins.verifier_fns import (
    contains,
    exact_match,
    get_fn,
    list_fns,
    regex_match,
    register,
    register_fn,
    tool_calls_match,
    unregister,
    verify_task,
)
from evsys_sdk.builtins.verifiers import VERIFIER_CLASSES, FormatOnlyVerifier
from evsys_sdk.spec.data_types import E2BVerifier, HarborTask, InProcessVerifier, LLMJudgeVerifier
from evsys_sdk.spec.protocols import VerificationResult, Verifier

BUILT_INS = ["contains", "exact_match", "regex_match", "tool_calls_match"]


@pytest.fixture
def scratch() -> Iterator[str]:
    """A registry name that is removed again after the test."""
    name = "scratch_fn"
    yield name
    unregister(name)


class TestRegistry:
    def test_built_ins(self) -> None:
        assert list_fns() == BUILT_INS
        assert get_fn("exact_match") is exact_match
        assert get_fn("tool_calls_match") is tool_calls_match

    def test_unknown_name(self) -> None:
        with pytest.raises(
            ValueError,
            match=r"^Unknown verifier fn 'nope'; registered: \['contains', 'exact_match', 'regex_match', "
            r"'tool_calls_match'\]$",
        ):
            get_fn("nope")

    def test_register_and_unregister(self, scratch: str) -> None:
        def always(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            return 0.25

        register(scratch, always)
        assert get_fn(scratch) is always
        assert list_fns() == sorted([*BUILT_INS, scratch])
        register(scratch, always)  # the same function again is a no-op
        unregister(scratch)
        assert scratch not in list_fns()
        unregister(scratch)  # absent names are ignored

    def test_decorator_returns_the_function(self, scratch: str) -> None:
        @register_fn(scratch)
        def half(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            return 0.5

        assert get_fn(scratch) is half
        assert half("", None, {}) == 0.5

    def test_taking_a_used_name_needs_replace(self, scratch: str) -> None:
        def one(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            return 1.0

        def two(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            return 2.0

        register(scratch, one)
        with pytest.raises(ValueError, match=f"verifier fn '{scratch}' is already registered .*one.*replace=True"):
            register(scratch, two)
        assert get_fn(scratch) is one
        register(scratch, two, replace=True)
        assert get_fn(scratch) is two
        register_fn(scratch, replace=True)(one)
        assert get_fn(scratch) is one


class TestExactMatch:
    @pytest.mark.parametrize(
        ("output", "expected", "params", "reward"),
        [
            ("42", "42", {}, 1.0),
            ("  42\n", " 42 ", {}, 1.0),
            ("42", 42, {}, 1.0),
            ("0", 0, {}, 1.0),
            ("Paris", "paris", {}, 0.0),
            ("Paris", "paris", {"ignore_case": True}, 1.0),
            ("Paris", "paris", {"ignore_case": False}, 0.0),
            ("42", "4", {}, 0.0),
            ("", None, {}, 1.0),
            ("x", None, {}, 0.0),
        ],
    )
    def test_cases(self, output: str, expected: Any, params: dict[str, Any], reward: float) -> None:
        assert exact_match(output, expected, params) == reward


class TestContains:
    @pytest.mark.parametrize(
        ("output", "expected", "params", "reward"),
        [
            ("the answer is 42.", "42", {}, 1.0),
            ("the answer is 42.", "43", {}, 0.0),
            ("anything", "", {}, 0.0),
            ("anything", None, {}, 0.0),
            ("HELLO world", "hello", {}, 0.0),
            ("HELLO world", "hello", {"ignore_case": True}, 1.0),
            ("value 7", 7, {}, 1.0),
        ],
    )
    def test_cases(self, output: str, expected: Any, params: dict[str, Any], reward: float) -> None:
        assert contains(output, expected, params) == reward


class TestRegexMatch:
    @pytest.mark.parametrize(
        ("output", "pattern", "params", "reward"),
        [
            ("answer: 42", r"\b42\b", {}, 1.0),
            ("answer: 420", r"\b42\b", {}, 0.0),
            ("ANSWER", "answer", {}, 0.0),
            ("ANSWER", "answer", {"ignore_case": True}, 1.0),
            ("anything", "", {}, 0.0),
            ("anything", None, {}, 0.0),
        ],
    )
    def test_cases(self, output: str, pattern: Any, params: dict[str, Any], reward: float) -> None:
        assert regex_match(output, pattern, params) == reward

    def test_invalid_pattern_is_an_error(self) -> None:
        with pytest.raises(ValueError, match=r"regex_match: invalid pattern '\(unclosed'"):
            regex_match("x", "(unclosed", {})


class TestToolCallsMatch:
    EXPECTED: ClassVar[dict[str, Any]] = {"tool": "browser", "action": "click", "coordinate": [100, 200]}

    @pytest.mark.parametrize(
        "output",
        [
            '{"tool": "browser", "action": "click", "coordinate": [100, 200]}',
            '```json\n{"tool": "browser", "action": "click", "coordinate": [110, 190]}\n```',
            'I will click. {"tool": "browser", "action": "click", "coordinate": [125, 175]} done {not json}',
            'noise {not json} then {"action": "click", "coordinate": [75.5, 225], "tool": "browser", "extra": 1}',
        ],
    )
    def test_matches(self, output: str) -> None:
        assert tool_calls_match(output, self.EXPECTED, {}) == 1.0

    @pytest.mark.parametrize(
        "output",
        [
            '{"tool": "shell", "action": "click", "coordinate": [100, 200]}',
            '{"tool": "browser", "action": "type", "coordinate": [100, 200]}',
            '{"tool": "browser", "action": "click", "coordinate": [126, 200]}',
            '{"tool": "browser", "action": "click", "coordinate": [100, 174]}',
            '{"tool": "browser", "action": "click", "coordinate": [100]}',
            '{"tool": "browser", "action": "click", "coordinate": ["100", "200"]}',
            '{"tool": "browser", "action": "click"}',
            "no json at all",
            "[1, 2]",
            "",
        ],
    )
    def test_mismatches(self, output: str) -> None:
        assert tool_calls_match(output, self.EXPECTED, {}) == 0.0

    def test_coordinate_tolerance_param(self) -> None:
        output = '{"tool": "browser", "action": "click", "coordinate": [140, 200]}'
        assert tool_calls_match(output, self.EXPECTED, {}) == 0.0
        assert tool_calls_match(output, self.EXPECTED, {"coordinate_tolerance": 40}) == 1.0
        exact = '{"tool": "browser", "action": "click", "coordinate": [101, 200]}'
        assert tool_calls_match(exact, self.EXPECTED, {"coordinate_tolerance": 0}) == 0.0

    def test_ref_and_text_must_match_when_expected(self) -> None:
        expected = {"tool": "browser", "action": "type", "ref": "e12", "text": "hello"}
        good = {"tool": "browser", "action": "type", "ref": "e12", "text": "hello"}
        assert tool_calls_match(json.dumps(good), expected, {}) == 1.0
        assert tool_calls_match(json.dumps({**good, "ref": "e13"}), expected, {}) == 0.0
        assert tool_calls_match(json.dumps({**good, "text": "bye"}), expected, {}) == 0.0
        assert tool_calls_match(json.dumps({k: v for k, v in good.items() if k != "text"}), expected, {}) == 0.0
        # keys absent from expected are not checked
        assert tool_calls_match(json.dumps(good), {"tool": "browser", "action": "type"}, {}) == 1.0

    def test_expected_as_json_text(self) -> None:
        output = '{"tool": "browser", "action": "click", "coordinate": [100, 200]}'
        assert tool_calls_match(output, json.dumps(self.EXPECTED), {}) == 1.0
        assert tool_calls_match(output, "```json\n" + json.dumps(self.EXPECTED) + "\n```", {}) == 1.0
        assert tool_calls_match(output, "not json", {}) == 0.0
        assert tool_calls_match(output, None, {}) == 0.0

    def test_malformed_expected_coordinate(self) -> None:
        output = '{"tool": "browser", "action": "click", "coordinate": [100, 200]}'
        assert tool_calls_match(output, {**self.EXPECTED, "coordinate": "100,200"}, {}) == 0.0


class TestVerifyTask:
    def test_in_process(self) -> None:
        task = HarborTask("t1", "say 42", InProcessVerifier("exact_match", "42", {"ignore_case": True}))
        assert verify_task(task, " 42 ") == VerificationResult(reward=1.0, info={"fn_name": "exact_match"})
        assert verify_task(task, "41").reward == 0.0

    def test_params_and_expected_reach_the_fn(self, scratch: str) -> None:
        seen: list[tuple[str, Any, dict[str, Any]]] = []

        @register_fn(scratch)
        def spy(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            seen.append((model_output, expected, params))
            return 1  # an int reward comes back as a float

        result = verify_task(HarborTask("t", "i", InProcessVerifier(scratch, {"gold": 1}, {"p": 2})), "out")
        assert seen == [("out", {"gold": 1}, {"p": 2})]
        assert result.reward == 1.0 and isinstance(result.reward, float)

    def test_params_are_not_shared_with_the_task(self, scratch: str) -> None:
        @register_fn(scratch)
        def mutating(model_output: str, expected: Any, params: dict[str, Any]) -> float:
            params["touched"] = True
            return 0.0

        task = HarborTask("t", "i", InProcessVerifier(scratch, None, {"p": 1}))
        verify_task(task, "x")
        assert isinstance(task.verifier, InProcessVerifier) and task.verifier.params == {"p": 1}

    def test_unknown_fn(self) -> None:
        with pytest.raises(ValueError, match=r"^Unknown verifier fn 'missing'; registered: \["):
            verify_task(HarborTask("t", "i", InProcessVerifier("missing")), "x")

    def test_e2b_is_not_executed_in_core(self) -> None:
        with pytest.raises(NotImplementedError, match="task 'e1' has an E2BVerifier.*plugin"):
            verify_task(HarborTask("e1", "i", E2BVerifier()), "x")

    def test_llm_judge_points_at_frontier(self) -> None:
        with pytest.raises(NotImplementedError, match=r"LLMJudgeVerifier.*pip install evsys-frontier"):
            verify_task(HarborTask("j1", "i", LLMJudgeVerifier("judge", "rubric")), "x")

    def test_unknown_verifier_type(self) -> None:
        task = HarborTask("t9", "i", {"kind": "in_process", "fn_name": "exact_match"})  # type: ignore[arg-type]
        with pytest.raises(TypeError, match=r"^task 't9' has unknown verifier type: dict$"):
            verify_task(task, "x")

    def test_no_verifier(self) -> None:
        with pytest.raises(TypeError, match=r"^task 'g' has no verifier"):
            verify_task(HarborTask("g", "generation only"), "x")


class TestFormatOnlyVerifier:
    def test_is_a_verifier(self) -> None:
        assert FormatOnlyVerifier.name == "format_only"
        assert isinstance(FormatOnlyVerifier(), Verifier)
        assert (FormatOnlyVerifier,) == VERIFIER_CLASSES

    @pytest.mark.parametrize(
        ("completion", "reward", "has_think", "has_answer"),
        [
            ("<think>t</think>\n<answer>A</answer>", 1.0, True, True),
            ("<think>t</think> no answer", 0.5, True, False),
            ("<answer>A</answer>", 0.5, False, True),
            ("<think>unclosed <answer>A", 0.0, False, False),
            ("</answer> closing first <answer>", 0.5, False, True),
            ("bad", 0.0, False, False),
        ],
    )
    def test_reward(self, completion: str, reward: float, has_think: bool, has_answer: bool) -> None:
        result = FormatOnlyVerifier().verify(prompt="p", completion=completion, target={})
        assert result.reward == pytest.approx(reward)
        assert result.info == {"has_think": has_think, "has_answer": has_answer}

    def test_params(self) -> None:
        verifier = FormatOnlyVerifier(has_think_reward=0.2, has_answer_reward=0.7)
        assert verifier.verify(prompt="", completion="<think></think><answer></answer>", target={}).reward == (
            pytest.approx(0.9)
        )
        assert verifier.verify(prompt="", completion="<answer>x</answer>", target={}).reward == pytest.approx(0.7)

    def test_config_is_strict(self) -> None:
        with pytest.raises(ValueError, match="has_think_rewrd"):
            FormatOnlyVerifier(has_think_rewrd=1.0)
        assert FormatOnlyVerifier().config.model_dump() == {"has_think_reward": 0.5, "has_answer_reward": 0.5}


def test_module_exports() -> None:
    for name in verifier_fns.__all__:
        assert hasattr(verifier_fns, name), name


def test_a_path_registration_again_after_its_first_use_is_a_no_op() -> None:
    """A second plugin host re-runs the hooks: the path it registers names the function already resolved."""
    name = "scratch_path_again"
    try:
        verifier_fns.register(name, "evsys_sdk.builtins.verifier_fns:exact_match")
        assert verifier_fns.get_fn(name) is verifier_fns.exact_match  # resolved: the registry now holds the fn
        verifier_fns.register(name, "evsys_sdk.builtins.verifier_fns:exact_match")
        assert verifier_fns.get_fn(name) is verifier_fns.exact_match
        with pytest.raises(ValueError, match="already registered"):
            verifier_fns.register(name, "evsys_sdk.builtins.verifier_fns:regex_match")
    finally:
        verifier_fns.unregister(name)
