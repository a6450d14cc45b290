"""The ``GEPAAdapter`` evaluating candidate system prompts with evsys inference clients.

Imported only when a ``gepa_prompt`` run trains (it imports gepa). A candidate is
``{"system_prompt": text}``; a batch is evaluated concurrently through core's eval engine
(``generate_all``: threads or native async, retries, failures recorded, never raised), each
completion scored by the run's scorer. Per example, never raising: a failed generation scores 0
and says why in its trajectory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gepa.core.adapter import EvaluationBatch, ProposalFn

from evsys_gepa.inference import SystemPromptMode, build_task_client
from evsys_gepa.tasks import Example, Scored, expected_text
from evsys_sdk.eval.engine import GenerationRequest, generate_all
from evsys_sdk.eval.retry import RetryPolicy
from evsys_sdk.plugins.registry import registry

__all__ = ["COMPONENT", "EvsysAdapter"]

COMPONENT = "system_prompt"


class EvsysAdapter:
    """GEPA's adapter protocol over an evsys task LM and scorer."""

    # None: GEPA's default reflective proposer (the reflection LM) writes new prompts.
    propose_new_texts: ProposalFn | None = None

    def __init__(
        self,
        *,
        task_lm: str,
        task_lm_config: Mapping[str, Any],
        scorer: Callable[[Example, str], Scored],
        mode: SystemPromptMode = "prefix",
        max_tokens: int = 256,
        temperature: float = 0.0,
        max_concurrency: int = 8,
        max_attempts: int = 3,
    ):
        self.task_lm = task_lm
        self.task_lm_config = dict(task_lm_config)
        self.scorer = scorer
        self.mode = mode
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.max_concurrency = max_concurrency
        self.retry = RetryPolicy(max_attempts=max_attempts)
        # prefix mode: one task LM for every candidate (a local model loads once)
        self._inner = None if mode == "native" else registry("inference_client").get(task_lm)(**self.task_lm_config)
        self._clients: dict[str, Any] = {}
        self.generations = 0
        self.failures = 0

    def client_for(self, system_prompt: str) -> Any:
        """The task LM answering under ``system_prompt`` (what the arm serves if this prompt wins)."""
        client = self._clients.get(system_prompt)
        if client is None:
            client = build_task_client(self.task_lm, self.task_lm_config, system_prompt, self.mode, inner=self._inner)
            if len(self._clients) > 64:
                self._clients.clear()
            self._clients[system_prompt] = client
        return client

    def evaluate(
        self, batch: list[Example], candidate: dict[str, str], capture_traces: bool = False
    ) -> EvaluationBatch[dict[str, Any], dict[str, Any]]:
        prompt = candidate[COMPONENT]
        requests = [
            GenerationRequest(ex.text, self.max_tokens, self.temperature, context=f"example {ex.id}") for ex in batch
        ]
        outcomes = generate_all(
            self.client_for(prompt),
            requests,
            max_concurrency=self.max_concurrency,
            retry=self.retry,
            progress=False,
            label="gepa candidate",
        )
        outputs: list[dict[str, Any]] = []
        scores: list[float] = []
        trajectories: list[dict[str, Any]] = []
        for ex, out in zip(batch, outcomes, strict=True):
            self.generations += 1
            if out.ok:
                try:
                    scored = self.scorer(ex, out.text)
                except Exception as exc:  # a broken scorer scores 0 and says why; GEPA goes on
                    scored = Scored(0.0, f"Scoring failed: {type(exc).__name__}: {exc}")
            else:
                self.failures += 1
                scored = Scored(0.0, f"The generation failed ({out.error}); score 0.")
            outputs.append({"id": ex.id, "completion": out.text, "error": out.error})
            scores.append(float(scored.score))
            if capture_traces:
                trajectories.append(
                    {"example": ex, "completion": out.text, "score": scored.score, "feedback": scored.feedback}
                )
        return EvaluationBatch(outputs=outputs, scores=scores, trajectories=trajectories if capture_traces else None)

    def make_reflective_dataset(
        self,
        candidate: dict[str, str],
        eval_batch: EvaluationBatch[dict[str, Any], dict[str, Any]],
        components_to_update: list[str],
    ) -> dict[str, Sequence[Mapping[str, Any]]]:
        records: list[dict[str, Any]] = []
        for traj in eval_batch.trajectories or []:
            ex: Example = traj["example"]
            record: dict[str, Any] = {"Inputs": ex.text, "Generated Outputs": traj["completion"] or "(empty)"}
            if ex.expected is not None:
                record["Expected"] = expected_text(ex.expected)
            record["Feedback"] = traj["feedback"]
            records.append(record)
        return {name: records for name in components_to_update}
