"""LLM judges: score parsing, any inference kind as judge, retries, and benchmarks with llm_judge tasks."""

from __future__ import annotations

import pytest
from test_contracts import grade

from evsys_frontier.errors import ProviderRequestError
from evsys_frontier.judge import LLMJudge, parse_score
from evsys_frontier.testing import FakeProviderServer
from evsys_sdk.base.errors import UnknownKindError
from evsys_sdk.eval.benchmark import Benchmark
from evsys_sdk.plugins.registry import registry


@pytest.mark.parametrize(
    ("text", "scale", "reward", "raw"),
    [
        ("Good.\nSCORE: 0.8", 1.0, 0.8, 0.8),
        ("Decent.\nScore: 7/10", 1.0, 0.7, 7.0),
        ("**SCORE:** 9", 10.0, 0.9, 9.0),
        ("score = 1.5", 1.0, 1.0, 1.5),  # clamped into [0, 1]
        ("SCORE: 0.1 ... on reflection SCORE: 0.6", 1.0, 0.6, 0.6),  # the last one counts
    ],
)
def test_parse_score(text: str, scale: float, reward: float, raw: float) -> None:
    parsed = parse_score(text, scale)
    assert parsed is not None and parsed[0] == pytest.approx(reward) and parsed[1] == raw


def test_parse_score_without_a_score_line() -> None:
    assert parse_score("I think it is fine.") is None


def _judge(server: FakeProviderServer, **params: object) -> LLMJudge:
    return LLMJudge(judge_params={"claude": {"base_url": server.url}}, **params)  # type: ignore[arg-type]


def test_verdict_rationale_and_prompt_on_the_wire() -> None:
    with FakeProviderServer(responder=grade) as srv:
        judge = _judge(srv, rubric="Is it correct?")
        target = {"judge_model": "claude:claude-opus-4-1", "expected": "Paris"}
        result = judge.verify(prompt="Capital of France?", completion="Paris, of course.", target=target)
        assert result.reward == 1.0
        assert result.info == {
            "judge_model": "claude:claude-opus-4-1",
            "score": 1.0,
            "rationale": "The answer matches the reference.",
        }
        [req] = srv.requests
        assert req.json["model"] == "claude-opus-4-1"
        prompt = req.json["messages"][0]["content"]
        assert "Is it correct?" in prompt and "Capital of France?" in prompt and "<reference>\nParis" in prompt
        # The judge client is built once and reused.
        judge.verify(prompt="q", completion="Paris", target=target)
        assert judge.judge_client("claude:claude-opus-4-1") is judge.judge_client("claude:claude-opus-4-1")


def test_any_registered_kind_judges() -> None:
    judge = LLMJudge(judge={"kind": "mock", "params": {"template": "Fine work.\nSCORE: 3/4"}}, rubric="r")
    result = judge.verify(prompt="q", completion="a", target={})
    assert result.reward == 0.75 and result.info["rationale"] == "Fine work."
    silent = LLMJudge(judge={"kind": "mock"}, rubric="r").verify(prompt="q", completion="a", target={})
    assert silent.reward == 0.0 and silent.info["error"] == "the judge gave no SCORE line"


def test_judge_from_env_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProviderServer(responder=lambda p: "SCORE: 0.5") as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        result = LLMJudge().verify(prompt="q", completion="a", target={"judge_model": "claude", "rubric": "r"})
        assert result.reward == 0.5


def test_transient_judge_failures_are_retried_then_score_zero(server: FakeProviderServer) -> None:
    judge = _judge(server, max_attempts=3, rubric="r")
    server.fail(529, retry_after=0, times=2)
    assert judge.verify(prompt="q", completion="a", target={"judge_model": "claude"}).reward == 0.0  # "a" != SCORE
    assert len(server.requests) == 3
    server.fail(503, retry_after=0, times=3, message="down for maintenance")
    result = judge.verify(prompt="q", completion="a", target={"judge_model": "claude"})
    assert result.reward == 0.0 and "down for maintenance" in result.info["error"]


def test_a_refused_judge_request_raises(server: FakeProviderServer) -> None:
    server.fail(404, message="model: claude-nope")
    with pytest.raises(ProviderRequestError, match="claude-nope"):
        _judge(server, rubric="r").verify(prompt="q", completion="a", target={"judge_model": "claude:claude-nope"})


def test_judge_config_errors() -> None:
    with pytest.raises(ValueError, match="no rubric"):
        LLMJudge(judge={"kind": "mock"}).verify(prompt="q", completion="a", target={})
    with pytest.raises(ValueError, match="no judge"):
        LLMJudge(rubric="r").verify(prompt="q", completion="a", target={})
    with pytest.raises(UnknownKindError, match="'claud'; did you mean 'claude'"):
        LLMJudge(rubric="r").verify(prompt="q", completion="a", target={"judge_model": "claud"})


TASKS = [
    {
        "task_id": f"t{i}",
        "instruction": f"Say {word}",
        "verifier": {"kind": "llm_judge", "judge_model": "claude", "rubric": f"The reply says {word}."},
    }
    for i, word in enumerate(["alpha", "beta", "gamma"])
]


def _rubric_grader(p: object) -> str:
    prompt = getattr(p, "prompt", "")
    word = prompt.split("The reply says ", 1)[1].split(".", 1)[0]
    response = prompt.split("<response>", 1)[1]
    return "SCORE: 1" if word in response else "SCORE: 0"


def test_benchmark_with_llm_judge_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    bench = Benchmark.from_iterable("judged", TASKS)
    with FakeProviderServer(responder=_rubric_grader) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        policy = registry("inference_client").get("mock")(template="I say {prompt}")
        score = bench.score(policy)  # core dispatches llm_judge specs to the registered verifier
        assert score.metrics["mean_reward"] == 1.0 and score.metrics["n_tasks"] == 3.0
        wrong = registry("inference_client").get("mock")(template="I say nothing")
        assert bench.score(wrong).metrics["mean_reward"] == 0.0
        assert len(srv.requests_for("anthropic")) == 6


def test_in_process_llm_judge_fn_in_a_task_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks can name the judge as an in-process fn, which core's Benchmark.score runs as it is."""
    registry("verifier").list()  # plugin discovery registers the fn
    rows = [
        {
            "task_id": "t0",
            "instruction": "Say alpha",
            "verifier": {
                "kind": "in_process",
                "fn_name": "llm_judge",
                "params": {"judge_model": "claude", "rubric": "The reply says alpha."},
            },
        }
    ]
    with FakeProviderServer(responder=_rubric_grader) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        policy = registry("inference_client").get("mock")(template="alpha!")
        assert Benchmark.from_iterable("b", rows).score(policy).metrics["mean_reward"] == 1.0
