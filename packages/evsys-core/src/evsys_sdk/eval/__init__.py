"""Generic eval infrastructure: concurrent generation with retries, pass@k, alias matching.

* ``generate_all`` / ``agenerate_all``: the concurrency engine (async clients awaited, sync clients
  on threads, ``generate_batch`` in chunks), with ``RetryPolicy``, a shareable ``RateLimiter`` and an
  optional ``CompletionCache``; used by the harness below and by ``evsys_sdk.eval.benchmark.Benchmark.score``.
* The retry layer: ``call_with_retry``, ``RetryReport``, ``RetryFailure``, ``is_transient``.
* Estimators: ``pass_at_k_unbiased``, ``estimate_rates`` (every rate with its standard error).
* The tool-search harness: ``evaluate_model``, ``run_model_eval``, ``score_rows``, ``ModelEvalConfig``,
  ``EvalSummary``, ``EvalArtifacts``, ``format_summary_markdown``, ``load_eval_dataset``,
  ``AliasMatcher``, the prompt helpers and ``extract_predicted_slug``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from evsys_sdk.base.lazy import lazy_getattr

if TYPE_CHECKING:  # for type checkers; at run time names load on first use (the CLI imports this package)
    from evsys_sdk.eval.alias import AliasMatcher
    from evsys_sdk.eval.cache import CompletionCache, client_identity
    from evsys_sdk.eval.engine import GenerationRequest, Outcome, RateLimiter, agenerate_all, generate_all
    from evsys_sdk.eval.harness import (
        EvalArtifacts,
        EvalSummary,
        ModelEvalConfig,
        evaluate_model,
        format_summary_markdown,
        load_eval_dataset,
        model_query_found,
        run_model_eval,
        score_rows,
    )
    from evsys_sdk.eval.prompts import (
        DEFAULT_SYSTEM,
        DEFAULT_SYSTEM_NO_THINK,
        extract_predicted_slug,
        qwen3_chat_template_prompt,
        qwen_chat_prompt,
    )
    from evsys_sdk.eval.retry import (
        RetryFailure,
        RetryPolicy,
        RetryReport,
        call_with_retry,
        is_transient,
        retry_after_of,
        status_of,
    )
    from evsys_sdk.eval.stats import estimate_rates, pass_at_k_unbiased, pass_hat_k_unbiased, standard_error

_WHERE = {
    "AliasMatcher": "evsys_sdk.eval.alias",
    "CompletionCache": "evsys_sdk.eval.cache",
    "client_identity": "evsys_sdk.eval.cache",
    "GenerationRequest": "evsys_sdk.eval.engine",
    "Outcome": "evsys_sdk.eval.engine",
    "RateLimiter": "evsys_sdk.eval.engine",
    "agenerate_all": "evsys_sdk.eval.engine",
    "generate_all": "evsys_sdk.eval.engine",
    "EvalArtifacts": "evsys_sdk.eval.harness",
    "EvalSummary": "evsys_sdk.eval.harness",
    "ModelEvalConfig": "evsys_sdk.eval.harness",
    "evaluate_model": "evsys_sdk.eval.harness",
    "format_summary_markdown": "evsys_sdk.eval.harness",
    "load_eval_dataset": "evsys_sdk.eval.harness",
    "model_query_found": "evsys_sdk.eval.harness",
    "run_model_eval": "evsys_sdk.eval.harness",
    "score_rows": "evsys_sdk.eval.harness",
    "DEFAULT_SYSTEM": "evsys_sdk.eval.prompts",
    "DEFAULT_SYSTEM_NO_THINK": "evsys_sdk.eval.prompts",
    "extract_predicted_slug": "evsys_sdk.eval.prompts",
    "qwen3_chat_template_prompt": "evsys_sdk.eval.prompts",
    "qwen_chat_prompt": "evsys_sdk.eval.prompts",
    "RetryFailure": "evsys_sdk.eval.retry",
    "RetryPolicy": "evsys_sdk.eval.retry",
    "RetryReport": "evsys_sdk.eval.retry",
    "call_with_retry": "evsys_sdk.eval.retry",
    "is_transient": "evsys_sdk.eval.retry",
    "retry_after_of": "evsys_sdk.eval.retry",
    "status_of": "evsys_sdk.eval.retry",
    "estimate_rates": "evsys_sdk.eval.stats",
    "pass_at_k_unbiased": "evsys_sdk.eval.stats",
    "pass_hat_k_unbiased": "evsys_sdk.eval.stats",
    "standard_error": "evsys_sdk.eval.stats",
}

__all__ = [
    "DEFAULT_SYSTEM",
    "DEFAULT_SYSTEM_NO_THINK",
    "AliasMatcher",
    "CompletionCache",
    "EvalArtifacts",
    "EvalSummary",
    "GenerationRequest",
    "ModelEvalConfig",
    "Outcome",
    "RateLimiter",
    "RetryFailure",
    "RetryPolicy",
    "RetryReport",
    "agenerate_all",
    "call_with_retry",
    "client_identity",
    "estimate_rates",
    "evaluate_model",
    "extract_predicted_slug",
    "format_summary_markdown",
    "generate_all",
    "is_transient",
    "load_eval_dataset",
    "model_query_found",
    "pass_at_k_unbiased",
    "pass_hat_k_unbiased",
    "qwen3_chat_template_prompt",
    "qwen_chat_prompt",
    "retry_after_of",
    "run_model_eval",
    "score_rows",
    "standard_error",
    "status_of",
]


__getattr__ = lazy_getattr(__name__, _WHERE)
