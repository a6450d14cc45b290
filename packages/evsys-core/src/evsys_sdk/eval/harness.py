"""The alias-aware tool-search eval: generate an answer per query, extract the slug, score with aliases.

A dataset row is ``{"tool_slug", "toolkit", "queries": [str, ...]}``; the queries are paraphrases of
one request, so per row pass@1 = the first query is answered right, pass@3 = any, pass^3 = all. The
unbiased estimators and a standard error for every rate are reported beside them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evsys_sdk.base.io import atomic_write_json, atomic_write_text
from evsys_sdk.eval.alias import AliasMatcher
from evsys_sdk.eval.cache import CompletionCache
from evsys_sdk.eval.engine import GenerationRequest, RateLimiter, generate_all
from evsys_sdk.eval.prompts import extract_predicted_slug, qwen_chat_prompt
from evsys_sdk.eval.retry import RetryPolicy, RetryReport
from evsys_sdk.eval.stats import pass_at_k_unbiased, pass_hat_k_unbiased, standard_error

__all__ = [
    "EvalArtifacts",
    "EvalSummary",
    "ModelEvalConfig",
    "evaluate_model",
    "format_summary_markdown",
    "load_eval_dataset",
    "model_query_found",
    "run_model_eval",
    "score_rows",
]

QueryFoundFn = Callable[[AliasMatcher, str, Mapping[str, Any]], bool]


@dataclass
class ModelEvalConfig:
    """Sampling, retry and concurrency settings of a model eval.

    ``prompt_builder(query=...)`` renders a query; ``retry`` overrides the policy built from
    max_attempts/backoff_base/backoff_cap/jitter (e.g. to inject a fake sleep).
    """

    max_tokens: int = 256
    temperature: float = 0.0
    max_attempts: int = 5
    batch_size: int = 1
    prompt_builder: Callable[..., str] = qwen_chat_prompt
    stop: list[str] | None = None
    max_concurrency: int = 16
    backoff_base: float = 1.0
    backoff_cap: float = 16.0
    jitter: float = 0.5
    rate_limiter: RateLimiter | None = None
    cache_dir: str | None = None
    bidirectional: bool = True
    retry: RetryPolicy | None = None

    def retry_policy(self) -> RetryPolicy:
        return self.retry or RetryPolicy(
            max_attempts=self.max_attempts,
            backoff_base=self.backoff_base,
            backoff_cap=self.backoff_cap,
            jitter=self.jitter,
        )


@dataclass
class EvalSummary:
    pass_at_1: float
    pass_at_3: float
    pass_pow_3: float
    n_rows: int
    n_queries: int
    per_toolkit: dict[str, dict[str, float]] = field(default_factory=dict)
    retry_report: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    unbiased: dict[str, float] = field(default_factory=dict)  # pass@1, pass@3, pass^3 estimators
    stderr: dict[str, float] = field(default_factory=dict)  # of every rate, same names (+ "_unbiased")

    def as_dict(self) -> dict[str, Any]:
        return {
            "overall": {
                "pass_at_1": round(self.pass_at_1, 4),
                "pass_at_3": round(self.pass_at_3, 4),
                "pass_pow_3": round(self.pass_pow_3, 4),
            },
            "n_rows": self.n_rows,
            "n_queries": self.n_queries,
            "per_toolkit": self.per_toolkit,
            "retry_report": self.retry_report,
            "notes": self.notes,
            "unbiased": {k: round(v, 4) for k, v in self.unbiased.items()},
            "stderr": {k: round(v, 4) for k, v in self.stderr.items()},
        }


@dataclass
class EvalArtifacts:
    summary: EvalSummary
    summary_strict_primary: EvalSummary | None = None  # primary aliases only (when secondary ones were given)
    per_row_results: list[dict[str, Any]] = field(default_factory=list)


def load_eval_dataset(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """A JSON list of rows, or the older ``{"results": [...]}`` shape (query objects become their
    ``"query"`` strings)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: malformed JSON: {exc}") from exc
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        rows = []
        for row in data["results"]:
            queries = [q.get("query", "") if isinstance(q, Mapping) else q for q in row.get("queries") or []]
            rows.append({**row, "queries": queries})
        return rows
    if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
        raise ValueError(f"{path}: an eval dataset is a JSON list of rows (or an object with a 'results' list)")
    return data


def run_model_eval(
    rows: Sequence[Mapping[str, Any]],
    client: Any,
    config: ModelEvalConfig | None = None,
    progress: bool | None = True,
    *,
    retry_report: RetryReport | None = None,
) -> list[dict[str, Any]]:
    """Generate one completion per query, concurrently and with retries.

    Returns ``{tool_slug, toolkit, queries: [{query, completion, predicted, error}]}`` per row; a query
    whose retries ran out has completion "", predicted "" and error "retry_exhausted".
    """
    config = config or ModelEvalConfig()
    report = retry_report if retry_report is not None else RetryReport()
    stop = tuple(config.stop) if config.stop is not None else None
    requests = [
        GenerationRequest(
            prompt=config.prompt_builder(query=q),
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            stop=stop,
            context=f"{row.get('tool_slug', '')}#{j}",
        )
        for row in rows
        for j, q in enumerate(row.get("queries") or [])
    ]
    outcomes = generate_all(
        client,
        requests,
        max_concurrency=config.max_concurrency,
        batch_size=config.batch_size,
        retry=config.retry_policy(),
        rate_limiter=config.rate_limiter,
        cache=CompletionCache(config.cache_dir) if config.cache_dir else None,
        report=report,
        progress=None if progress else False,
        label="eval",
    )
    results, it = [], iter(outcomes)
    for row in rows:
        queries = []
        for q in row.get("queries") or []:
            out = next(it)
            queries.append(
                {
                    "query": q,
                    "completion": out.text,
                    "predicted": extract_predicted_slug(out.text) if out.ok else "",
                    "error": out.error,
                }
            )
        results.append({"tool_slug": row.get("tool_slug", ""), "toolkit": row.get("toolkit", ""), "queries": queries})
    return results


def model_query_found(matcher: AliasMatcher, expected: str, query: Mapping[str, Any]) -> bool:
    """A query counts when it has no error and its predicted slug matches the expected one."""
    return not query.get("error") and matcher.matches(expected, str(query.get("predicted") or ""))


def _rates(flag_lists: Sequence[Sequence[bool]]) -> dict[str, list[float]]:
    per: dict[str, list[float]] = {k: [] for k in ("pass@1", "pass@3", "pass^3", "pass@1_unbiased", "pass@3_unbiased")}
    per["pass^3_unbiased"] = []
    for flags in flag_lists:
        n, c = len(flags), sum(flags)
        per["pass@1"].append(float(bool(flags) and flags[0]))
        per["pass@3"].append(float(any(flags)))
        per["pass^3"].append(float(bool(flags) and all(flags)))
        per["pass@1_unbiased"].append(pass_at_k_unbiased(n, c, 1))
        per["pass@3_unbiased"].append(pass_at_k_unbiased(n, c, 3))
        per["pass^3_unbiased"].append(pass_hat_k_unbiased(n, c, 3))
    return per


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def score_rows(
    rows: Sequence[Mapping[str, Any]],
    *,
    matcher: AliasMatcher,
    query_found_fn: QueryFoundFn = model_query_found,
    retry_report: RetryReport | Mapping[str, Any] | None = None,
) -> EvalSummary:
    """Score per-row results (``run_model_eval``'s shape). A row without queries counts in n_rows but
    scores 0. ``query_found_fn(matcher, expected_slug, query_result)`` decides each query."""
    report = retry_report.as_dict() if isinstance(retry_report, RetryReport) else dict(retry_report or {})
    report = report or {"total_failures": 0, "failures": []}
    flag_lists: list[list[bool]] = []
    by_toolkit: dict[str, list[list[bool]]] = {}
    for row in rows:
        expected = str(row.get("tool_slug") or "")
        flags = [
            bool(query_found_fn(matcher, expected, q if isinstance(q, Mapping) else {"query": q}))
            for q in row.get("queries") or []
        ]
        flag_lists.append(flags)
        by_toolkit.setdefault(str(row.get("toolkit") or ""), []).append(flags)
    per = _rates(flag_lists)
    per_toolkit = {}
    for toolkit in sorted(by_toolkit):
        tk = _rates(by_toolkit[toolkit])
        per_toolkit[toolkit] = {
            "count": len(by_toolkit[toolkit]),
            "pass_at_1": round(_mean(tk["pass@1"]), 4),
            "pass_at_3": round(_mean(tk["pass@3"]), 4),
            "pass_pow_3": round(_mean(tk["pass^3"]), 4),
        }
    return EvalSummary(
        pass_at_1=_mean(per["pass@1"]),
        pass_at_3=_mean(per["pass@3"]),
        pass_pow_3=_mean(per["pass^3"]),
        n_rows=len(rows),
        n_queries=sum(len(f) for f in flag_lists),
        per_toolkit=per_toolkit,
        retry_report=report,
        unbiased={k.removesuffix("_unbiased"): _mean(v) for k, v in per.items() if k.endswith("_unbiased")},
        stderr={k: standard_error(v) for k, v in per.items()},
    )


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def format_summary_markdown(summary: EvalSummary, *, title: str = "Eval Summary") -> str:
    """The summary as markdown: rates, estimators with standard errors, retry failures, per toolkit."""
    se = summary.stderr
    lines = [
        f"# {title}",
        "",
        f"- Rows: **{summary.n_rows}**, queries: **{summary.n_queries}**",
        f"- pass@1: **{_pct(summary.pass_at_1)}**",
        f"- pass@3: **{_pct(summary.pass_at_3)}**",
        f"- pass^3: **{_pct(summary.pass_pow_3)}**",
    ]
    if summary.unbiased:
        est = ", ".join(f"{k} {_pct(v)} ± {_pct(se.get(k + '_unbiased', 0.0))}" for k, v in summary.unbiased.items())
        lines.append(f"- unbiased estimators (± standard error): {est}")
    if se:
        errs = ", ".join(f"{k} ± {_pct(se[k])}" for k in ("pass@1", "pass@3", "pass^3") if k in se)
        lines.append(f"- standard errors: {errs}")
    total = int(summary.retry_report.get("total_failures") or 0)
    if total:
        by_type = summary.retry_report.get("by_exception_type") or {}
        if not by_type:
            for f in summary.retry_report.get("failures") or []:
                by_type[f["exception_type"]] = by_type.get(f["exception_type"], 0) + 1
        lines += ["", f"## Retry-exhausted failures: {total}", "", "| Exception | Count |", "|---|---|"]
        lines += [f"| {name} | {count} |" for name, count in sorted(by_type.items())]
    if summary.per_toolkit:
        lines += ["", "## Per toolkit", "", "| Toolkit | N | pass@1 | pass@3 | pass^3 |", "|---|---|---|---|---|"]
        for toolkit in sorted(summary.per_toolkit):
            t = summary.per_toolkit[toolkit]
            lines.append(
                f"| {toolkit} | {int(t['count'])} | {_pct(t['pass_at_1'])} | {_pct(t['pass_at_3'])} "
                f"| {_pct(t['pass_pow_3'])} |"
            )
    if summary.notes:
        lines += ["", "## Notes", ""] + [f"- {note}" for note in summary.notes]
    return "\n".join(lines) + "\n"


def evaluate_model(
    *,
    dataset_path: str | os.PathLike[str],
    aliases_path: str | os.PathLike[str],
    client: Any,
    secondary_aliases_path: str | os.PathLike[str] | None = None,
    config: ModelEvalConfig | None = None,
    output_dir: str | os.PathLike[str] | None = None,
    progress: bool | None = True,
) -> EvalArtifacts:
    """Run and score ``client`` on a dataset. With ``output_dir``, writes model_summary.json,
    model_summary.md (title "model eval") and model_per_row.json."""
    config = config or ModelEvalConfig()
    rows = load_eval_dataset(dataset_path)
    matcher = AliasMatcher.from_files(aliases_path, secondary_aliases_path, bidirectional=config.bidirectional)
    report = RetryReport()
    results = run_model_eval(rows, client, config, progress, retry_report=report)
    summary = score_rows(results, matcher=matcher, retry_report=report)
    strict = None
    if secondary_aliases_path is not None and Path(secondary_aliases_path).exists():
        primary = AliasMatcher.from_files(aliases_path, bidirectional=config.bidirectional)
        strict = score_rows(results, matcher=primary, retry_report=report)
        strict.notes.append("primary aliases only")
    if output_dir is not None:
        out = Path(output_dir)
        payload = summary.as_dict()
        if strict is not None:
            payload["strict_primary"] = strict.as_dict()
        atomic_write_json(out / "model_summary.json", payload)
        atomic_write_text(out / "model_summary.md", format_summary_markdown(summary, title="model eval"))
        atomic_write_json(out / "model_per_row.json", results)
    return EvalArtifacts(summary=summary, summary_strict_primary=strict, per_row_results=results)
