from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from evsys_sdk.builtins.mock import MockInference
from evsys_sdk.eval import RetryPolicy
from evsys_sdk.eval.benchmark import Benchmark, BenchmarkScore, BenchmarkTaskResult
from evsys_sdk.spec.data_types import HarborTask, InProcessVerifier


def task(i: int, expected: str = "MOCK_ANSWER", fn: str = "contains", **meta: Any) -> dict[str, Any]:
    return {
        "task_id": f"t{i}",
        "instruction": f"do {i}",
        "verifier": {"kind": "in_process", "fn_name": fn, "expected": expected},
        "metadata": meta,
    }


def write_bench(root: Path, rows: list[Any], metadata: str | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (root / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    if metadata is not None:
        (root / "metadata.yaml").write_text(metadata)
    return root


class Recording:
    """Sync client answering from a per-instruction script, recording every call."""

    name: ClassVar[str] = "recording"

    def __init__(self, answers: dict[str, list[str]] | None = None, fail: dict[str, list[BaseException]] | None = None):
        self.answers = answers or {}
        self.fail = fail or {}
        self.calls: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        with self.lock:
            self.calls.append({"prompt": prompt, "max_tokens": max_tokens, "temperature": temperature, "stop": stop})
            errors = self.fail.get(prompt)
            if errors:
                raise errors.pop(0)
            script = self.answers.get(prompt)
            return script.pop(0) if script else "MOCK_ANSWER"


def test_from_dir(tmp_path: Path) -> None:
    root = write_bench(tmp_path / "b", [task(1), "", task(2, split="x")], "name: nice\nversion: 2\n")
    bench = Benchmark.from_dir(root)
    assert bench.name == "nice" and bench.metadata == {"name": "nice", "version": 2} and bench.root == root
    assert [t.task_id for t in bench.tasks] == ["t1", "t2"] and len(bench) == 2
    assert bench.tasks[1] == HarborTask("t2", "do 2", InProcessVerifier("contains", "MOCK_ANSWER"), {"split": "x"})
    assert Benchmark.from_dir(write_bench(tmp_path / "plain", [task(1)])).name == "plain"
    assert Benchmark.from_dir(write_bench(tmp_path / "empty_meta", [task(1)], "")).metadata == {}


def test_from_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="benchmark dir not found"):
        Benchmark.from_dir(tmp_path / "nope")
    (tmp_path / "no_tasks").mkdir()
    with pytest.raises(FileNotFoundError, match="benchmark missing tasks.jsonl"):
        Benchmark.from_dir(tmp_path / "no_tasks")
    with pytest.raises(
        ValueError, match=r"tasks.jsonl:2: invalid JSON: Expecting property name enclosed in double quotes at column 2$"
    ):
        Benchmark.from_dir(write_bench(tmp_path / "bad_json", [task(1), "{oops"]))
    bad_kind = {**task(1), "verifier": {"kind": "wat"}}
    with pytest.raises(ValueError, match=r"tasks.jsonl:1: unknown verifier kind: 'wat'"):
        Benchmark.from_dir(write_bench(tmp_path / "bad_kind", [bad_kind]))
    with pytest.raises(ValueError, match=r"tasks.jsonl:1: .*instruction"):
        Benchmark.from_dir(write_bench(tmp_path / "missing", [{"task_id": "x", "verifier": None}]))
    with pytest.raises(ValueError, match="metadata.yaml must be a mapping"):
        Benchmark.from_dir(write_bench(tmp_path / "meta_list", [task(1)], "- a\n- b\n"))


def test_from_iterable_and_load(tmp_path: Path) -> None:
    typed = HarborTask("x", "inst", InProcessVerifier("exact_match", "y"))
    bench = Benchmark.from_iterable("mixed", [typed, task(2)], metadata={"k": 1})
    assert bench.tasks[0] is typed and bench.tasks[1].task_id == "t2" and bench.root is None
    assert bench.metadata == {"k": 1}
    root = write_bench(tmp_path / "b", [task(1)])
    loaded = Benchmark.load({"path": str(root), "name": "ignored when a path is given"})
    assert loaded is not None and loaded.name == "b" and loaded.root == root
    assert Benchmark.load({}) is None


def test_score_sequential_semantics() -> None:
    bench = Benchmark.from_iterable("b", [task(1, split={"kind": "a"}), task(2, expected="nope"), task(3)])
    client = Recording(answers={"do 1": ["MOCK_ANSWER", "nothing", "MOCK_ANSWER"]})
    score = bench.score(
        client,
        num_samples=3,
        max_tokens=64,
        temperature=0.7,
        stop=["</a>"],
        breakdown_keys=["split.kind"],
        max_concurrency=1,  # the scripted answers are consumed in call order
    )
    assert len(client.calls) == 9
    assert all(c["max_tokens"] == 64 and c["temperature"] == 0.7 and c["stop"] == ["</a>"] for c in client.calls)
    assert score.metrics == pytest.approx({"n_tasks": 3.0, "mean_reward": (2 / 3 + 0 + 1) / 3, "pass_rate": 5 / 9})
    first = score.per_task[0]
    assert first == BenchmarkTaskResult(
        "t1", "do 1", "MOCK_ANSWER", "MOCK_ANSWER", pytest.approx(2 / 3), {"split": {"kind": "a"}}, [1.0, 0.0, 1.0], []
    )
    assert score.breakdowns == {
        "split.kind": {
            "a": {"n": 1.0, "mean_reward": pytest.approx(2 / 3), "pass_rate": 0.0},
            "__missing__": {"n": 2.0, "mean_reward": 0.5, "pass_rate": 0.5},
        }
    }
    assert len(score.rollouts) == 9 and score.rollouts[1] == {
        "task_id": "t1",
        "sample": 1,
        "completion": "nothing",
        "reward": 0.0,
        "error": None,
    }
    # estimators and standard errors beside the metrics
    assert score.stats["pass@3_unbiased"] == pytest.approx(2 / 3)
    assert score.stats["pass@1_unbiased"] == pytest.approx((2 / 3 + 0 + 1) / 3)
    assert set(score.stderr) == {"mean_reward", "pass_rate"} and score.stderr["mean_reward"] > 0


def test_score_limit_prompt_builder_and_metrics(caplog: pytest.LogCaptureFixture) -> None:
    bench = Benchmark.from_iterable("b", [task(i) for i in range(5)])
    client = Recording()
    score = bench.score(
        client, limit=2, prompt_builder=lambda t: f"<<{t.task_id}>>", metrics=["pass@3", "pass^3", "avg"]
    )
    assert [c["prompt"] for c in client.calls] == ["<<t0>>", "<<t1>>"] and score.metrics["n_tasks"] == 2.0
    assert score.metrics == {"n_tasks": 2.0, "pass@3": 1.0, "pass^3": 1.0, "avg": 1.0}
    assert set(score.stderr) == {"pass@3", "pass^3", "avg"}
    with caplog.at_level(logging.WARNING):
        score = bench.score(client, metrics=["mean_reward", "exact_match", "no_such_metric"])
    assert set(score.metrics) == {"n_tasks", "mean_reward"}
    assert "exact_match" in caplog.text and "no_such_metric" in caplog.text


def test_empty_benchmark_makes_no_calls() -> None:
    client = Recording()
    for score in (
        Benchmark.from_iterable("e", []).score(client),
        Benchmark.from_iterable("b", [task(1)]).score(client, limit=0),
    ):
        assert score == BenchmarkScore({"mean_reward": 0.0, "pass_rate": 0.0, "n_tasks": 0.0}, [], {})
    assert client.calls == []


@pytest.mark.parametrize(
    ("verifier", "error", "match"),
    [
        ({"kind": "e2b", "dockerfile": "FROM x"}, NotImplementedError, "E2BVerifier"),
        ({"kind": "llm_judge", "rubric": "r"}, NotImplementedError, "LLMJudgeVerifier"),
        ({"kind": "in_process", "fn_name": "no_such_fn"}, ValueError, "Unknown verifier fn"),
    ],
)
def test_unscorable_tasks_fail_before_any_call(verifier: dict[str, Any], error: type[Exception], match: str) -> None:
    bench = Benchmark.from_iterable("b", [task(1), {**task(2), "verifier": verifier}])
    client = Recording()
    with pytest.raises(error, match=match):
        bench.score(client)
    assert client.calls == []


def test_unknown_verifier_object() -> None:
    odd = HarborTask("odd", "x", verifier="not a verifier")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="task 'odd' has unknown verifier type: str"):
        Benchmark("b", [odd]).score(Recording())


class Gate:
    """Counts calls in flight; the barrier proves ``max_concurrency`` calls run together."""

    name: ClassVar[str] = "gate"

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.lock = threading.Lock()
        self.inflight = self.peak = 0

    def generate(self, *, prompt: str, **kw: Any) -> str:
        with self.lock:
            self.inflight += 1
            self.peak = max(self.peak, self.inflight)
        self.barrier.wait()
        with self.lock:
            self.inflight -= 1
        return "MOCK_ANSWER"


def test_score_runs_concurrently_and_keeps_order() -> None:
    bench = Benchmark.from_iterable("b", [task(i, expected=f"do {i}") for i in range(12)])
    gate = Gate(6)
    score = bench.score(gate, max_concurrency=6)
    assert gate.peak == 6 and score.metrics["n_tasks"] == 12.0 and score.metrics["mean_reward"] == 0.0
    echo = MockInference(template="{prompt}")
    score = bench.score(echo, max_concurrency=4)
    assert score.metrics["mean_reward"] == 1.0 and [r.model_output for r in score.per_task] == [
        f"do {i}" for i in range(12)
    ]


def test_score_retries_transient_and_scores_exhausted_as_zero() -> None:
    waits: list[float] = []

    async def asleep(s: float) -> None:
        waits.append(s)

    bench = Benchmark.from_iterable("b", [task(i) for i in range(4)])
    client = Recording(fail={"do 1": [TimeoutError("slow")], "do 2": [ConnectionError("down")] * 10})
    retry = RetryPolicy(max_attempts=3, backoff_base=0.1, jitter=0.0, asleep=asleep)
    score = bench.score(client, retry=retry)
    assert [r.reward for r in score.per_task] == [1.0, 1.0, 0.0, 1.0]
    assert score.per_task[2].errors == ["sample 0: retry_exhausted"] and score.per_task[1].errors == []
    assert score.retry_report["total_failures"] == 1 and score.retry_report["failures"][0]["context"] == "t2#0"
    assert sorted(waits) == [0.1, 0.1, 0.2]


def test_score_with_cache_dir(tmp_path: Path) -> None:
    bench = Benchmark.from_iterable("b", [task(i) for i in range(3)])
    first, second = Recording(), Recording()
    bench.score(first, num_samples=2, cache=tmp_path / "cache")
    score = bench.score(second, num_samples=2, cache=str(tmp_path / "cache"))
    assert len(first.calls) == 6 and second.calls == [] and score.metrics["mean_reward"] == 1.0


def test_spec_verifiers_run_through_the_verifier_registry(plugin_host: Any) -> None:
    from evsys_sdk.spec.data_types import LLMJudgeVerifier
    from evsys_sdk.spec.protocols import VerificationResult

    judge_task = HarborTask("j1", "Say hi", LLMJudgeVerifier(judge_model="mock", rubric="greets"))
    with pytest.raises(NotImplementedError, match="pip install evsys-frontier"):
        Benchmark.from_iterable("b", [judge_task]).score(Recording())

    class Judge:
        name = "llm_judge"

        def verify(self, *, prompt: str, completion: str, target: dict[str, Any]) -> VerificationResult:
            return VerificationResult(
                1.0 if "MOCK" in completion and target["rubric"] == "greets" else 0.0, {"p": prompt}
            )

    plugin_host.registries["verifier"].add(Judge)
    score = Benchmark.from_iterable("b", [judge_task]).score(Recording())
    assert score.metrics["pass_rate"] == 1.0


def test_client_usage_counters_reach_the_metrics() -> None:
    class Counting(Recording):
        def usage_metrics(self) -> dict[str, float]:
            return {"requests": float(len(self.calls)), "output_tokens": 3.0 * len(self.calls)}

    client = Counting()
    client.generate(prompt="warm-up")  # counted before the benchmark starts: not part of its usage
    score = Benchmark.from_iterable("b", [task(1), task(2)]).score(client, num_samples=2)
    assert score.metrics["usage/requests"] == 4.0 and score.metrics["usage/output_tokens"] == 12.0


@pytest.mark.timeout(30)
@pytest.mark.parametrize("error", [StopIteration(), GeneratorExit()], ids=lambda e: type(e).__name__)
def test_score_returns_when_a_client_raises_a_non_exception(error: BaseException) -> None:
    bench = Benchmark.from_iterable("b", [task(i) for i in range(3)])
    score = bench.score(Recording(fail={"do 1": [error]}))
    assert [r.reward for r in score.per_task] == [1.0, 0.0, 1.0]
    assert score.per_task[1].errors == [f"sample 0: error:{type(error).__name__}"]
    assert score.retry_report["by_exception_type"] == {type(error).__name__: 1}
