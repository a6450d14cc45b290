"""Benchmarks: a folder of Harbor tasks (``tasks.jsonl`` + optional ``metadata.yaml``) scored on any
inference client through the eval engine (concurrent, retried, optionally cached), with metrics from
the metric registry, standard errors, unbiased pass@k and per-metadata breakdowns."""

from __future__ import annotations

import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk.base.io import iter_jsonl_values
from evsys_sdk.base.logger import get_logger
from evsys_sdk.builtins.verifier_fns import get_fn, spec_executor, verify_task
from evsys_sdk.eval.cache import CompletionCache
from evsys_sdk.eval.engine import GenerationRequest, RateLimiter, generate_all
from evsys_sdk.eval.retry import RetryPolicy, RetryReport
from evsys_sdk.eval.stats import estimate_rates
from evsys_sdk.spec.data_types import (
    E2BVerifier,
    HarborTask,
    InProcessVerifier,
    LLMJudgeVerifier,
    harbor_task_from_dict,
)

__all__ = ["Benchmark", "BenchmarkScore", "BenchmarkTaskResult"]

log = get_logger("benchmark")
DEFAULT_METRICS = ("mean_reward", "pass_rate")
MISSING = "__missing__"
_K_METRIC = re.compile(r"^pass[@^](\d+)$")


@dataclass
class BenchmarkTaskResult:
    task_id: str
    instruction: str
    model_output: str  # the last sample's completion
    expected: Any
    reward: float  # mean over the task's samples
    metadata: dict[str, Any] = field(default_factory=dict)
    rewards: list[float] = field(default_factory=list)  # one per sample
    errors: list[str] = field(default_factory=list)  # samples whose generation failed (scored 0)


@dataclass
class BenchmarkScore:
    metrics: dict[str, float]
    per_task: list[BenchmarkTaskResult]
    breakdowns: dict[str, dict[str, dict[str, float]]]
    rollouts: list[dict[str, Any]] = field(default_factory=list)
    # Every rate with its standard error (``<name>_se``) and the unbiased pass@k / pass^k estimators.
    stats: dict[str, float] = field(default_factory=dict)
    retry_report: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_tasks(
        cls,
        per_task: Sequence[BenchmarkTaskResult],
        *,
        metrics: Sequence[str] | None = None,
        breakdown_keys: Sequence[str] = (),
        **fields: Any,
    ) -> BenchmarkScore:
        """The score of per-task results, however they were produced: the named metrics (default
        ``mean_reward`` and ``pass_rate``) over each task's sample rewards, the breakdowns by metadata
        keys, and every rate with its standard error. ``fields`` set the rest (rollouts, retry_report)."""
        if not per_task:
            return cls({"mean_reward": 0.0, "pass_rate": 0.0, "n_tasks": 0.0}, [], {}, **fields)
        task_rewards = [list(r.rewards) or [r.reward] for r in per_task]
        names = list(metrics) if metrics is not None else list(DEFAULT_METRICS)
        ks = {1, max(len(r) for r in task_rewards)} | {int(m.group(1)) for n in names if (m := _K_METRIC.match(n))}
        return cls(
            metrics=_metrics(names, task_rewards),
            per_task=list(per_task),
            breakdowns=_breakdowns(per_task, breakdown_keys),
            stats=estimate_rates(task_rewards, ks=ks),
            **fields,
        )

    @property
    def stderr(self) -> dict[str, float]:
        """The standard error of each reported metric that has one."""
        out = {}
        for name in self.metrics:
            key = "mean_reward" if name == "avg" else name
            if f"{key}_se" in self.stats:
                out[name] = self.stats[f"{key}_se"]
        return out


def _lookup(metadata: Mapping[str, Any], dotted: str) -> Any:
    value: Any = metadata
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


def _bucket(value: Any) -> str:
    if value is MISSING or value is None:
        return MISSING
    return value if isinstance(value, str) else json.dumps(value) if isinstance(value, list | dict) else str(value)


def _check_scorable(task: HarborTask) -> None:
    """Raise what verify_task would, before any model call is spent."""
    if isinstance(task.verifier, InProcessVerifier):
        get_fn(task.verifier.fn_name)
    elif isinstance(task.verifier, E2BVerifier | LLMJudgeVerifier):
        spec_executor(task)  # a spec no installed plugin executes raises here
    else:
        verify_task(task, "")  # no verifier / an unknown type raises before running anything


class Benchmark:
    """A named list of Harbor tasks."""

    def __init__(
        self,
        name: str,
        tasks: Sequence[HarborTask],
        metadata: Mapping[str, Any] | None = None,
        root: str | os.PathLike[str] | None = None,
    ):
        self.name = name
        self.tasks = list(tasks)
        self.metadata = dict(metadata or {})
        self.root = Path(root) if root is not None else None

    def __len__(self) -> int:
        return len(self.tasks)

    def __repr__(self) -> str:
        return f"Benchmark(name={self.name!r}, n_tasks={len(self.tasks)}, root={self.root!r})"

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> Benchmark:
        root = Path(path)
        if not root.is_dir():
            raise FileNotFoundError(f"benchmark dir not found: {root}")
        tasks_file = root / "tasks.jsonl"
        if not tasks_file.is_file():
            raise FileNotFoundError(f"benchmark missing tasks.jsonl: {tasks_file}")
        metadata = _read_metadata(root / "metadata.yaml")
        name = metadata.get("name") or root.name
        return cls(str(name), read_tasks(tasks_file), metadata, root)

    @classmethod
    def from_iterable(
        cls, name: str, rows: Iterable[HarborTask | Mapping[str, Any]], *, metadata: Mapping[str, Any] | None = None
    ) -> Benchmark:
        tasks = [r if isinstance(r, HarborTask) else harbor_task_from_dict(r) for r in rows]
        return cls(name, tasks, metadata)

    @classmethod
    def load(cls, spec: Mapping[str, Any], *, store: Any = None) -> Benchmark | None:
        """``{"path": dir}`` (wins when several keys are given), or a dashboard benchmark by ``id`` or
        ``name`` (newest version) pulled into the workspace cache; None when the spec names none."""
        if spec.get("path"):
            return cls.from_dir(spec["path"])
        if not (spec.get("id") or spec.get("name")):
            return None
        workspace = importlib.import_module("evsys_sdk.tracking.workspace")
        ws = workspace.Workspace(store)
        bid = spec.get("id") or ws.benchmark_id_for_name(spec["name"])
        path = Path(ws.pull_benchmark(bid).path)
        return cls.from_iterable(str(spec.get("name") or bid), read_tasks(path))

    def score(
        self,
        client: Any,
        *,
        max_tokens: int = 512,
        temperature: float = 0.0,
        stop: list[str] | None = None,
        prompt_builder: Callable[[HarborTask], str] | None = None,
        breakdown_keys: Sequence[str] | None = None,
        limit: int | None = None,
        metrics: Sequence[str] | None = None,
        num_samples: int = 1,
        max_concurrency: int = 16,
        max_attempts: int = 5,
        retry: RetryPolicy | None = None,
        rate_limiter: RateLimiter | None = None,
        cache: CompletionCache | str | os.PathLike[str] | None = None,
        progress: bool | None = False,
    ) -> BenchmarkScore:
        """Generate ``num_samples`` completions per task (concurrently, at most ``max_concurrency`` in
        flight, retried on transient errors) and score each with the task's verifier.

        A sample whose generation failed for good scores 0 and is listed in ``retry_report``; it never
        aborts the run. Verifier problems (unknown fn, E2B or LLM-judge tasks) raise before any call.
        """
        tasks = self.tasks if limit is None else self.tasks[: max(0, limit)]
        if not tasks:
            return BenchmarkScore.from_tasks([])
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        for task in tasks:
            _check_scorable(task)
        build = prompt_builder or (lambda t: t.instruction)
        stop_t = tuple(stop) if stop is not None else None
        requests = []
        for task in tasks:
            prompt = build(task)
            requests += [
                GenerationRequest(prompt, max_tokens, temperature, stop_t, sample=s, context=f"{task.task_id}#{s}")
                for s in range(num_samples)
            ]
        report = RetryReport()
        usage_before = _usage(client)
        outcomes = generate_all(
            client,
            requests,
            max_concurrency=max_concurrency,
            retry=retry or RetryPolicy(max_attempts=max_attempts),
            rate_limiter=rate_limiter,
            cache=cache if isinstance(cache, CompletionCache | None) else CompletionCache(cache),
            report=report,
            progress=progress,
            label=f"benchmark {self.name}",
        )
        per_task, rollouts = [], []
        for i, task in enumerate(tasks):
            rewards, errors, text = [], [], ""
            for s, out in enumerate(outcomes[i * num_samples : (i + 1) * num_samples]):
                text = out.text
                reward = verify_task(task, out.text).reward if out.ok else 0.0
                if not out.ok:
                    errors.append(f"sample {s}: {out.error}")
                rewards.append(reward)
                rollouts.append(
                    {"task_id": task.task_id, "sample": s, "completion": out.text, "reward": reward, "error": out.error}
                )
            expected = task.verifier.expected if isinstance(task.verifier, InProcessVerifier) else None
            per_task.append(
                BenchmarkTaskResult(
                    task.task_id,
                    task.instruction,
                    text,
                    expected,
                    sum(rewards) / len(rewards),
                    dict(task.metadata),
                    rewards,
                    errors,
                )
            )
        result = BenchmarkScore.from_tasks(
            per_task,
            metrics=metrics,
            breakdown_keys=breakdown_keys or (),
            rollouts=rollouts,
            retry_report=report.as_dict(),
        )
        result.metrics.update({f"usage/{k}": v - usage_before.get(k, 0.0) for k, v in _usage(client).items()})
        return result


def _usage(client: Any) -> dict[str, float]:
    """A client's cumulative usage counters (``usage_metrics()``, e.g. tokens of an API client), if any."""
    counters = getattr(client, "usage_metrics", None)
    return {k: float(v) for k, v in counters().items()} if callable(counters) else {}


def _metrics(names: Sequence[str], task_rewards: list[list[float]]) -> dict[str, float]:
    from evsys_sdk.builtins.metrics import compute_metric
    from evsys_sdk.plugins.registry import registry

    out = {"n_tasks": float(len(task_rewards))}
    for name in names:
        try:
            out[name] = compute_metric(registry("metric").get(name)(), task_rewards=task_rewards)
        except Exception as exc:  # one broken metric must not lose the others (or the generations)
            log.warning("benchmark metric %r failed and is omitted: %s: %s", name, type(exc).__name__, exc)
    return out


def _breakdowns(per_task: Sequence[BenchmarkTaskResult], keys: Iterable[str]) -> dict[str, dict[str, dict[str, float]]]:
    out: dict[str, dict[str, dict[str, float]]] = {}
    for key in keys:
        groups: dict[str, list[float]] = {}
        for r in per_task:
            groups.setdefault(_bucket(_lookup(r.metadata, key)), []).append(r.reward)
        out[key] = {
            bucket: {
                "n": float(len(rs)),
                "mean_reward": sum(rs) / len(rs),
                "pass_rate": sum(1.0 for x in rs if x >= 1.0) / len(rs),
            }
            for bucket, rs in groups.items()
        }
    return out


def read_tasks(path: str | os.PathLike[str]) -> list[HarborTask]:
    """Harbor tasks of a JSONL file; blank lines skipped, bad lines raise ``<file>:<line>: <problem>``."""
    return list(iter_tasks(path))


def iter_tasks(path: str | os.PathLike[str]) -> Iterator[HarborTask]:
    """The tasks of a JSONL file one at a time (validation streams a benchmark of any size)."""
    for lineno, raw in iter_jsonl_values(path):
        if not isinstance(raw, dict):
            raise ValueError(f"{path}:{lineno}: a task must be a JSON object, got {type(raw).__name__}")
        try:
            yield harbor_task_from_dict(raw)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{path}:{lineno}: {exc.args[0] if exc.args else exc}") from exc


def _read_metadata(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    from evsys_sdk.spec.source import parse_yaml_text

    data, _ = parse_yaml_text(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: metadata.yaml must be a mapping, got {type(data).__name__}")
    return data
