from __future__ import annotations

import functools
import itertools
import json
import math
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evsys_sdk.builtins.mock import MockInference
from evsys_sdk.eval import (
    DEFAULT_SYSTEM,
    DEFAULT_SYSTEM_NO_THINK,
    AliasMatcher,
    EvalSummary,
    ModelEvalConfig,
    RetryPolicy,
    RetryReport,
    estimate_rates,
    evaluate_model,
    extract_predicted_slug,
    format_summary_markdown,
    load_eval_dataset,
    pass_at_k_unbiased,
    pass_hat_k_unbiased,
    qwen3_chat_template_prompt,
    qwen_chat_prompt,
    run_model_eval,
    score_rows,
    standard_error,
)

# --- alias matching -------------------------------------------------------------------------------


def test_alias_classes_are_transitive_and_symmetric() -> None:
    m = AliasMatcher({"A": "B", "C": "B"}, {"D": ["C", "E"]})
    for x, y in itertools.permutations("ABCDE", 2):
        assert m.matches(x, y)
    assert m.matches("A", "A") and not m.matches("A", "Z") and not m.matches("Z", "A")
    assert not m.matches("", "") and not m.matches("A", "") and not m.matches("", "A")
    assert m.accepted_slugs("C") == ["C", "A", "B", "D", "E"]
    assert m.accepted_slugs("Z") == ["Z"]
    assert m.found_in("A", ["X", "E"]) and not m.found_in("A", ["X", "Y"]) and not m.found_in("A", [])


def test_alias_forward_only() -> None:
    m = AliasMatcher({"a": "b"}, {"b": ["c"]}, bidirectional=False)
    assert m.matches("a", "b") and m.matches("a", "c") and m.matches("b", "c")
    assert not m.matches("b", "a") and not m.matches("c", "b") and not m.matches("c", "a")
    assert m.accepted_slugs("a") == ["a", "b", "c"] and m.accepted_slugs("c") == ["c"]


def test_alias_files(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text(json.dumps({"X": "Y"}))
    (tmp_path / "s.json").write_text(json.dumps({"Y": ["Z"]}))
    assert AliasMatcher.from_files(tmp_path / "p.json", tmp_path / "s.json").matches("X", "Z")
    m = AliasMatcher.from_files(tmp_path / "p.json", tmp_path / "missing.json")  # ignored
    assert m.matches("X", "Y") and not m.matches("X", "Z")
    assert not AliasMatcher.from_files(tmp_path / "p.json", bidirectional=False).matches("Y", "X")
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        AliasMatcher.from_files(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError):
        AliasMatcher.from_files(tmp_path / "nope.json")
    with pytest.raises(ValueError, match="must be a string or a list"):
        AliasMatcher({"A": 3})


# --- prompts and slug extraction --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("<think>hmm</think>\n<answer>GITHUB_CREATE_ISSUE</answer>", "GITHUB_CREATE_ISSUE"),
        ("<answer>  slack_send  </answer>", "slack_send"),
        ("<answer>A</answer> then <answer>B</answer>", "A"),
        ("I'd use GMAIL_SEND_EMAIL, or maybe SLACK_SEND_MESSAGE_V2", "SLACK_SEND_MESSAGE_V2"),
        ("use SLACK1 or NOTION here", ""),  # too short to be slugs
        ("<answer>two words</answer> fallback LINEAR_CREATE", "LINEAR_CREATE"),
        ("", ""),
        ("no slug at all", ""),
    ],
)
def test_extract_predicted_slug(text: str, slug: str) -> None:
    assert extract_predicted_slug(text) == slug


def test_qwen_prompts() -> None:
    prompt = qwen_chat_prompt(query="send an email")
    assert prompt.startswith(f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n")
    assert "<|im_start|>user\nQuery: send an email<|im_end|>\n" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<think>" in DEFAULT_SYSTEM and "<think>" not in DEFAULT_SYSTEM_NO_THINK

    class Tok:
        def __init__(self) -> None:
            self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []

        def apply_chat_template(self, messages: list[dict[str, str]], **kw: Any) -> str:
            self.calls.append((messages, kw))
            return "rendered"

    tok = Tok()
    build = functools.partial(qwen3_chat_template_prompt, tokenizer=tok)
    assert build(query="q") == "rendered"
    assert tok.calls[-1] == (
        [{"role": "system", "content": DEFAULT_SYSTEM}, {"role": "user", "content": "Query: q"}],
        {"tokenize": False, "add_generation_prompt": True},
    )
    client = type("Client", (), {"_tokenizer": tok})()
    qwen3_chat_template_prompt("q", tokenizer=client, system="", enable_thinking=False)
    assert tok.calls[-1] == (
        [{"role": "user", "content": "Query: q"}],
        {"tokenize": False, "add_generation_prompt": True, "enable_thinking": False},
    )


# --- estimators -------------------------------------------------------------------------------------


def brute_force_pass_at_k(n: int, c: int, k: int) -> float:
    samples = [True] * c + [False] * (n - c)
    draws = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in d) for d in draws) / len(draws)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 2, 1), (5, 2, 3), (6, 0, 2), (6, 6, 4), (10, 3, 5), (4, 1, 4)])
def test_pass_at_k_unbiased_matches_enumeration(n: int, c: int, k: int) -> None:
    assert pass_at_k_unbiased(n, c, k) == pytest.approx(brute_force_pass_at_k(n, c, k))
    draws = list(itertools.combinations(range(n), k))
    assert pass_hat_k_unbiased(n, c, k) == pytest.approx(sum(all(i < c for i in d) for d in draws) / len(draws))


def test_pass_at_k_edge_cases() -> None:
    assert pass_at_k_unbiased(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k_unbiased(5, 2, 3) == pytest.approx(0.9)
    assert pass_at_k_unbiased(0, 0, 1) == 0.0
    assert pass_at_k_unbiased(2, 1, 3) == 1.0 and pass_at_k_unbiased(2, 0, 3) == 0.0  # n < k: any of n
    assert pass_hat_k_unbiased(2, 2, 3) == 1.0 and pass_hat_k_unbiased(2, 1, 3) == 0.0
    with pytest.raises(ValueError):
        pass_at_k_unbiased(3, 4, 1)
    with pytest.raises(ValueError):
        pass_at_k_unbiased(3, 1, 0)


def test_standard_errors_and_estimate_rates() -> None:
    assert standard_error([]) == 0.0 and standard_error([1.0]) == 0.0
    assert standard_error([0.0, 1.0, 0.0, 1.0]) == pytest.approx(math.sqrt(1 / 3 / 4))
    rates = estimate_rates([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0], [], [0.0, 0.0, 0.5]], ks=[1, 2])
    assert rates["n_tasks"] == 3.0
    assert rates["pass@1"] == pytest.approx(2 / 3) and rates["pass^2"] == pytest.approx(1 / 3)
    assert rates["pass@2"] == pytest.approx(2 / 3)
    assert rates["pass@2_unbiased"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert rates["pass^2_unbiased"] == pytest.approx(1 / 3)
    assert rates["mean_reward"] == pytest.approx((1 / 3 + 1 + 0.5 / 3) / 3)
    assert rates["pass_rate"] == pytest.approx(4 / 9)
    assert rates["pass@1_se"] == pytest.approx(standard_error([1.0, 1.0, 0.0]))
    assert rates["pass_rate_se"] > 0
    assert estimate_rates([]) == {
        "n_tasks": 0.0,
        "mean_reward": 0.0,
        "mean_reward_se": 0.0,
        "pass_rate": 0.0,
        "pass_rate_se": 0.0,
        **{
            f"{n}{suffix}": 0.0
            for n in ("pass@1", "pass^1", "pass@1_unbiased", "pass^1_unbiased")
            for suffix in ("", "_se")
        },
    }


# --- scoring and summaries --------------------------------------------------------------------------


def q(predicted: str, error: str | None = None) -> dict[str, Any]:
    return {"query": "q", "completion": "", "predicted": predicted, "error": error}


def test_score_rows() -> None:
    matcher = AliasMatcher({"A_TOOL": "A_ALIAS"})
    rows = [
        {"tool_slug": "A_TOOL", "toolkit": "a", "queries": [q("A_ALIAS"), q("NOPE"), q("A_TOOL")]},
        {"tool_slug": "A_TOOL", "toolkit": "a", "queries": [q("NOPE"), q("A_TOOL"), q("A_TOOL", "retry_exhausted")]},
        {"tool_slug": "B_TOOL", "toolkit": "b", "queries": [q("B_TOOL")] * 3},
        {"tool_slug": "C_TOOL", "toolkit": "b", "queries": []},
    ]
    s = score_rows(rows, matcher=matcher)
    assert (s.pass_at_1, s.pass_at_3, s.pass_pow_3) == (0.5, 0.75, 0.25)
    assert s.n_rows == 4 and s.n_queries == 9
    assert s.per_toolkit == {
        "a": {"count": 2, "pass_at_1": 0.5, "pass_at_3": 1.0, "pass_pow_3": 0.0},
        "b": {"count": 2, "pass_at_1": 0.5, "pass_at_3": 0.5, "pass_pow_3": 0.5},
    }
    assert s.retry_report == {"total_failures": 0, "failures": []}
    assert s.unbiased["pass@1"] == pytest.approx((2 / 3 + 1 / 3 + 1 + 0) / 4)
    assert s.unbiased["pass@3"] == pytest.approx(0.75)
    assert s.stderr["pass@1"] == pytest.approx(standard_error([1, 0, 1, 0]))
    d = s.as_dict()
    assert d["overall"] == {"pass_at_1": 0.5, "pass_at_3": 0.75, "pass_pow_3": 0.25}
    assert set(d) == {"overall", "n_rows", "n_queries", "per_toolkit", "retry_report", "notes", "unbiased", "stderr"}

    empty = score_rows([], matcher=matcher)
    assert (empty.pass_at_1, empty.pass_at_3, empty.pass_pow_3, empty.n_rows, empty.n_queries) == (0, 0, 0, 0, 0)

    custom = score_rows(rows, matcher=matcher, query_found_fn=lambda m, expected, query: True)
    assert custom.pass_pow_3 == 0.75  # the row without queries still scores 0
    report = RetryReport()
    report.record("A_TOOL#2", ConnectionError("down"), 5)
    assert score_rows(rows, matcher=matcher, retry_report=report).retry_report["total_failures"] == 1


def test_format_summary_markdown() -> None:
    s = EvalSummary(
        pass_at_1=0.5,
        pass_at_3=0.75,
        pass_pow_3=0.25,
        n_rows=4,
        n_queries=9,
        per_toolkit={"b": {"count": 1, "pass_at_1": 1.0, "pass_at_3": 1.0, "pass_pow_3": 1.0}},
        retry_report={"total_failures": 2, "by_exception_type": {"ConnectionError": 1, "HTTPError": 1}},
        notes=["primary aliases only"],
    )
    md = format_summary_markdown(s, title="T")
    assert md.startswith("# T\n\n- Rows: **4**, queries: **9**\n- pass@1: **50.0%**\n- pass@3: **75.0%**\n")
    assert "- pass^3: **25.0%**\n" in md
    assert "## Retry-exhausted failures: 2\n\n| Exception | Count |\n|---|---|\n| ConnectionError | 1 |" in md
    assert "## Per toolkit\n\n| Toolkit | N | pass@1 | pass@3 | pass^3 |\n|---|---|---|---|---|\n" in md
    assert "| b | 1 | 100.0% | 100.0% | 100.0% |" in md
    assert md.endswith("## Notes\n\n- primary aliases only\n")
    plain = format_summary_markdown(EvalSummary(0, 0, 0, 0, 0))
    assert plain.startswith("# Eval Summary\n") and "Retry" not in plain and "toolkit" not in plain


def test_load_eval_dataset_shapes(tmp_path: Path) -> None:
    rows = [{"tool_slug": "A", "toolkit": "t", "queries": ["x", "y"]}]
    (tmp_path / "new.json").write_text(json.dumps(rows))
    assert load_eval_dataset(tmp_path / "new.json") == rows
    old = {"results": [{"tool_slug": "A", "toolkit": "t", "queries": [{"query": "x", "found": True}, {"query": "y"}]}]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert load_eval_dataset(tmp_path / "old.json") == rows
    (tmp_path / "bad.json").write_text('{"rows": 1}')
    with pytest.raises(ValueError, match="JSON list"):
        load_eval_dataset(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[")
    with pytest.raises(ValueError, match="malformed JSON"):
        load_eval_dataset(tmp_path / "broken.json")


class Scripted:
    """Answers from a {query: slug} table; fails transiently on queries listed in ``flaky``."""

    name: ClassVar[str] = "scripted"

    def __init__(self, answers: dict[str, str], flaky: dict[str, int] | None = None) -> None:
        self.answers, self.flaky, self.prompts = answers, dict(flaky or {}), []  # type: ignore[var-annotated]

    def generate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        query = prompt.split("Query: ")[1].split("<|im_end|>")[0]
        self.prompts.append(prompt)
        if self.flaky.get(query, 0) > 0:
            self.flaky[query] -= 1
            raise ConnectionResetError("reset by peer")
        return f"<think>...</think><answer>{self.answers.get(query, 'UNKNOWN_TOOL')}</answer>"


def no_sleep_config(**kw: Any) -> ModelEvalConfig:
    async def asleep(s: float) -> None:
        return None

    return ModelEvalConfig(retry=RetryPolicy(max_attempts=3, sleep=lambda s: None, asleep=asleep), **kw)


def test_run_model_eval_rows_and_exhaustion() -> None:
    client = Scripted({"a1": "A_TOOL", "a2": "A_ALIAS"}, flaky={"a2": 1, "b1": 99})
    rows = [{"tool_slug": "A_TOOL", "toolkit": "a", "queries": ["a1", "a2"]}, {"tool_slug": "B", "queries": ["b1"]}]
    report = RetryReport()
    out = run_model_eval(rows, client, no_sleep_config(), progress=False, retry_report=report)
    assert out[0]["queries"][1]["predicted"] == "A_ALIAS" and out[0]["queries"][1]["error"] is None
    assert out[1] == {
        "tool_slug": "B",
        "toolkit": "",
        "queries": [{"query": "b1", "completion": "", "predicted": "", "error": "retry_exhausted"}],
    }
    assert report.total_failures == 1 and report.failures[0].context == "B#0" and report.failures[0].attempts == 3


def test_evaluate_model_writes_artifacts(tmp_path: Path) -> None:
    rows = [
        {"tool_slug": "A_TOOL", "toolkit": "a", "queries": ["a1", "a2", "a3"]},
        {"tool_slug": "B_TOOL", "toolkit": "b", "queries": ["b1", "b2", "b3"]},
    ]
    (tmp_path / "data.json").write_text(json.dumps(rows))
    (tmp_path / "primary.json").write_text(json.dumps({"A_TOOL": "A_ALIAS"}))
    (tmp_path / "secondary.json").write_text(json.dumps({"B_TOOL": ["B_OLD_NAME"]}))
    client = Scripted({"a1": "A_ALIAS", "a2": "A_TOOL", "a3": "WRONG_ONE", "b1": "B_OLD_NAME", "b2": "B_TOOL"})
    art = evaluate_model(
        dataset_path=tmp_path / "data.json",
        aliases_path=tmp_path / "primary.json",
        secondary_aliases_path=tmp_path / "secondary.json",
        client=client,
        config=no_sleep_config(),
        output_dir=tmp_path / "out",
        progress=False,
    )
    assert (art.summary.pass_at_1, art.summary.pass_at_3, art.summary.pass_pow_3) == (1.0, 1.0, 0.0)
    assert art.summary_strict_primary is not None and art.summary_strict_primary.pass_at_1 == 0.5
    assert len(art.per_row_results) == 2 and len(client.prompts) == 6
    summary = json.loads((tmp_path / "out" / "model_summary.json").read_text())
    assert summary["overall"]["pass_at_1"] == 1.0 and summary["strict_primary"]["overall"]["pass_at_1"] == 0.5
    assert (tmp_path / "out" / "model_summary.md").read_text().startswith("# model eval\n")
    assert json.loads((tmp_path / "out" / "model_per_row.json").read_text()) == art.per_row_results
    # without secondary aliases there is no strict summary; the mock client works as is
    art = evaluate_model(
        dataset_path=tmp_path / "data.json",
        aliases_path=tmp_path / "primary.json",
        client=MockInference(),
        progress=False,
    )
    assert art.summary_strict_primary is None and art.summary.n_queries == 6 and art.summary.pass_at_3 == 0.0


def test_batched_eval_uses_generate_batch() -> None:
    class Batched(Scripted):
        def generate_batch(self, *, prompts: list[str], **kw: Any) -> list[str]:
            self.batches = [*getattr(self, "batches", []), len(prompts)]
            return [self.generate(prompt=p) for p in prompts]

    client = Batched({"x": "X_TOOL_1"})
    rows = [{"tool_slug": "X_TOOL_1", "toolkit": "x", "queries": ["x", "x", "x"]}]
    out = run_model_eval(rows, client, no_sleep_config(batch_size=2), progress=False)
    assert sorted(client.batches) == [1, 2] and all(r["predicted"] == "X_TOOL_1" for r in out[0]["queries"])
