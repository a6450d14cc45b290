"""``gepa_prompt``: optimise a task LM's system prompt with GEPA (``gepa.optimize``); no weights change.

The examples are the run's rows (``extras["prompt_examples"]`` when given, else the training rows):
prompt examples, Harbor tasks or prompt/answer rows (see ``evsys_gepa.tasks``). Candidates are scored
with evsys inference clients (the ``task_lm`` kind) and evsys verifiers/metrics; a reflection LM (any
inference kind; the task LM itself by default) reads each minibatch's inputs, outputs, expected
answers and feedback and writes the next prompt.

This module imports no gepa at module level: the config validates, lists and exports its schema
without it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import Field, model_validator

from evsys_gepa.inference import SystemPromptMode
from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.params import FIXED, temperature_field
from evsys_sdk.spec.protocols import RunContext, RunResult

if TYPE_CHECKING:
    from gepa.core.callbacks import GEPACallback

__all__ = ["GEPAPromptAlgorithm", "GEPAPromptConfig"]

log = get_logger("gepa")
CandidateSelection = Literal["pareto", "current_best", "epsilon_greedy", "top_k_pareto"]


class GEPAPromptConfig(StrictModel):
    """Params of ``gepa_prompt``."""

    seed_prompt: str = Field(
        default="You are a helpful assistant. Answer concisely.",
        description="the system prompt GEPA starts from (a continual/combo chain's previous prompt wins)",
    )
    task_lm: str = Field(default="mock", description="the inference kind that answers under each candidate prompt")
    task_lm_config: dict[str, Any] = Field(default_factory=dict, description="params of the task_lm kind")
    reflection_lm: str | None = Field(
        default=None, description="the inference kind that proposes new prompts (None: the task LM reflects)"
    )
    reflection_lm_config: dict[str, Any] = Field(default_factory=dict, description="params of reflection_lm")
    system_prompt_mode: SystemPromptMode = Field(
        default="prefix",
        description="prefix: '<prompt>\\n\\n<input>' to any client; native: the client's own system_prompt param",
    )
    max_iterations: int = Field(default=20, ge=0, description="GEPA iterations (one proposal each)")
    max_metric_calls: int | None = Field(
        default=None, ge=1, description="budget of example evaluations (checked between iterations)"
    )
    examples_per_eval: int | None = Field(
        default=8, ge=1, description="the validation set: the first N examples (None: all), scored per candidate"
    )
    minibatch_size: int = Field(default=3, ge=1, description="examples the reflection LM sees per proposal")
    candidate_selection: CandidateSelection = Field(
        default="pareto",
        description="how GEPA picks the candidate to mutate next (GEPA's candidate_selection_strategy)",
    )
    perfect_score: float = Field(default=1.0, description="a per-example score counted as solved")
    stop_at_perfect: bool = Field(default=True, description="stop once a candidate reaches perfect_score")
    score_fn: str | None = Field(
        default=None, description="an in-process verifier fn (exact_match, contains, ...) scoring non-Harbor rows"
    )
    score_params: dict[str, Any] = Field(default_factory=dict, description="params passed to score_fn")
    metric: str | None = Field(
        default=None, description="a registered metric (predictions/targets style) scoring each non-Harbor row"
    )
    metric_params: dict[str, Any] = Field(default_factory=dict, description="params of the metric kind")
    max_tokens: int = Field(default=256, ge=1, description="tokens the task LM generates per example")
    temperature: float = temperature_field(0.0, "the task LM's sampling temperature")
    reflection_max_tokens: int = Field(default=2048, ge=1, description="tokens the reflection LM generates")
    reflection_temperature: float = temperature_field(0.0, "the reflection LM's sampling temperature")
    max_concurrency: int = Field(default=8, ge=1, description="task LM requests in flight per evaluation")
    seed: int = Field(default=1729, description="GEPA's random seed", json_schema_extra=FIXED)

    @model_validator(mode="after")
    def _one_scorer(self) -> GEPAPromptConfig:
        if self.score_fn is not None and self.metric is not None:
            raise ValueError("give score_fn or metric, not both")
        return self


class _ReflectionLM:
    """An evsys inference client as GEPA's ``LanguageModel`` (``str | messages -> str``)."""

    def __init__(self, client: Any, max_tokens: int, temperature: float):
        self.client, self.max_tokens, self.temperature = client, max_tokens, temperature
        self.calls = 0

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        self.calls += 1
        text = prompt if isinstance(prompt, str) else "\n\n".join(_message_text(m) for m in prompt)
        out: str = self.client.generate(prompt=text, max_tokens=self.max_tokens, temperature=self.temperature)
        return out


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")


class _NullLogger:
    """GEPA's log lines go to ``<run>/gepa/run_log.txt`` (GEPA's own Logger would swap sys.stdout)."""

    def __init__(self, path: Path):
        self.path = path

    def log(self, message: str) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(f"{message}\n")


class _IterationStopper:
    """Stops after ``max_iterations`` GEPA iterations (``state.i`` counts from -1)."""

    def __init__(self, max_iterations: int):
        self.max_iterations = max_iterations

    def __call__(self, gepa_state: Any) -> bool:
        return int(gepa_state.i) + 1 >= self.max_iterations


class _Tracker:
    """GEPA callbacks -> evsys: per-iteration metrics to the log store and the in-loop validation."""

    def __init__(self, ctx: RunContext, client_for: Callable[[str], Any]):
        self.ctx, self.client_for = ctx, client_for
        self.child_scores: list[float] | None = None
        self.metric_calls = 0
        self.rows: list[dict[str, float]] = []

    def _log(self, metrics: dict[str, float], step: int) -> None:
        self.ctx.log_store.log_metrics(metrics, step)
        self.rows.append({"step": float(step), **metrics})

    def on_budget_updated(self, event: Any) -> None:
        self.metric_calls = int(event["metric_calls_used"])

    def on_valset_evaluated(self, event: Any) -> None:
        if event["iteration"] == 0 and event["candidate_idx"] == 0:  # the seed
            score = float(event["average_score"])
            self._log({"gepa/score": score, "gepa/best_score": score, "gepa/metric_calls": 0.0}, 0)

    def on_iteration_start(self, event: Any) -> None:
        self.child_scores = None

    def on_evaluation_end(self, event: Any) -> None:
        if event["candidate_idx"] is None:  # the new proposal on the minibatch
            self.child_scores = [float(s) for s in event["scores"]]

    def on_iteration_end(self, event: Any) -> None:
        state = event["state"]
        step = int(state.i) + 1
        val_scores = [float(s) for s in state.program_full_scores_val_set]
        best_idx = max(range(len(val_scores)), key=lambda i: val_scores[i])
        accepted = bool(event["proposal_accepted"])
        metrics = {
            "gepa/best_score": val_scores[best_idx],
            "gepa/metric_calls": float(state.total_num_evals),
            "gepa/accepted": 1.0 if accepted else 0.0,
            "gepa/n_candidates": float(len(val_scores)),
        }
        # the score of this iteration's proposal: on the validation set when accepted, else its minibatch
        if accepted:
            metrics["gepa/score"] = val_scores[-1]
        elif self.child_scores:
            metrics["gepa/score"] = sum(self.child_scores) / len(self.child_scores)
        self._log(metrics, step)
        best_prompt = state.program_candidates[best_idx]["system_prompt"]
        self.ctx.validate(step, lambda: self.client_for(best_prompt))
        self.ctx.check_budget()


def _init_prompt(ctx: RunContext) -> str | None:
    """A continual/combo chain's previous prompt, when the previous stage saved one."""
    from evsys_gepa.inference import read_prompt

    handles = ctx.extras.get("backend_handles") or {}
    model = handles.get("model") if isinstance(handles, dict) else None
    init = ctx.extras.get("init_checkpoint") or (model.get("init_from_checkpoint") if isinstance(model, dict) else None)
    if not isinstance(init, str):
        return None
    path = Path(init)
    if path.is_file() or (path / "prompts.json").is_file():
        try:
            return read_prompt(path)
        except (ValueError, OSError, json.JSONDecodeError):
            return None
    return None


def _fingerprint(config: GEPAPromptConfig, seed_prompt: str, ids: list[str], texts: list[str]) -> str:
    blob = json.dumps([config.model_dump(mode="json"), seed_prompt, ids, texts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class GEPAPromptAlgorithm:
    """Prompt optimisation with GEPA. Runs on any backend (it trains no weights).

    Artifacts: ``final_prompt`` and ``final_checkpoint`` (``prompts.json``: what the arm serves),
    ``state-final`` (GEPA's run dir: its resumable state and a copy of ``prompts.json``, which the
    next stage of a continual or combo chain starts from), ``candidate_tree`` (``candidates.json``:
    every candidate with its parents and scores; ``candidate_tree.dot`` beside it). Metrics per
    iteration: ``gepa/score``, ``gepa/best_score``, ``gepa/metric_calls``, ``gepa/accepted``,
    ``gepa/n_candidates`` (step 0 is the seed prompt).
    """

    name: ClassVar[str] = "gepa_prompt"
    Config: ClassVar[type[GEPAPromptConfig]] = GEPAPromptConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_gepa.tasks import load_examples

        cfg = self.config
        rows = ctx.extras.get("prompt_examples") or ctx.extras.get("train_rows") or []
        if not rows:
            return RunResult(
                ctx.run_id,
                "failed",
                error="gepa_prompt needs examples: no prompt_examples and no training rows (give the run `data`)",
            )
        examples = load_examples(rows)
        if not any(ex.text for ex in examples):
            return RunResult(ctx.run_id, "failed", error="gepa_prompt: no example has a prompt to send")
        seed_prompt = _init_prompt(ctx) or cfg.seed_prompt
        ctx.log_store.log_hyperparams(
            {"algorithm": self.name, **cfg.model_dump(mode="json"), "n_examples": len(examples)}
        )
        return self._optimize(ctx, examples, seed_prompt)

    def _scorer(self, ctx: RunContext) -> Any:
        from evsys_gepa.tasks import make_scorer
        from evsys_sdk.plugins.registry import registry

        cfg = self.config
        metric = registry("metric").get(cfg.metric)(**cfg.metric_params) if cfg.metric else None
        score_fn = ctx.extras.get("prompt_score_fn")
        return make_scorer(
            score_fn=score_fn if callable(score_fn) else None,
            verifier_fn=cfg.score_fn,
            verifier_params=cfg.score_params,
            metric=metric,
            perfect_score=cfg.perfect_score,
        )

    def _optimize(self, ctx: RunContext, examples: list[Any], seed_prompt: str) -> RunResult:
        from gepa.api import optimize
        from gepa.core.result import GEPAResult
        from gepa.utils.stop_condition import ScoreThresholdStopper

        from evsys_gepa.adapter import COMPONENT, EvsysAdapter
        from evsys_sdk.plugins.registry import registry

        cfg = self.config
        out = Path(ctx.output_dir)
        run_dir = out / "gepa"
        valset = examples[: cfg.examples_per_eval] if cfg.examples_per_eval else examples
        fingerprint = _fingerprint(cfg, seed_prompt, [e.id for e in examples], [e.text for e in examples])
        marker = run_dir / "evsys_fingerprint"
        if run_dir.exists() and (not marker.is_file() or marker.read_text(encoding="utf-8").strip() != fingerprint):
            shutil.rmtree(run_dir)  # another config's state: never resume from it
        run_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(fingerprint + "\n", encoding="utf-8")

        adapter = EvsysAdapter(
            task_lm=cfg.task_lm,
            task_lm_config=cfg.task_lm_config,
            scorer=self._scorer(ctx),
            mode=cfg.system_prompt_mode,
            max_tokens=cfg.max_tokens,
            temperature=cfg.temperature,
            max_concurrency=cfg.max_concurrency,
        )
        adapter.client_for(seed_prompt)  # native mode: a kind without system_prompt fails here
        reflection_kind = cfg.reflection_lm or cfg.task_lm
        reflection_params = cfg.reflection_lm_config if cfg.reflection_lm else cfg.task_lm_config
        reflection = _ReflectionLM(
            registry("inference_client").get(reflection_kind)(**reflection_params),
            cfg.reflection_max_tokens,
            cfg.reflection_temperature,
        )
        tracker = _Tracker(ctx, adapter.client_for)
        stoppers: list[Any] = [_IterationStopper(cfg.max_iterations)]
        if cfg.stop_at_perfect:
            stoppers.append(ScoreThresholdStopper(cfg.perfect_score))
        result: GEPAResult[Any, Any] = optimize(
            seed_candidate={COMPONENT: seed_prompt},
            trainset=examples,
            valset=valset,
            adapter=adapter,
            reflection_lm=reflection,
            candidate_selection_strategy=cfg.candidate_selection,
            reflection_minibatch_size=cfg.minibatch_size,
            perfect_score=cfg.perfect_score,
            max_metric_calls=cfg.max_metric_calls,
            stop_callbacks=stoppers,
            logger=_NullLogger(run_dir / "run_log.txt"),
            run_dir=str(run_dir),
            callbacks=cast("list[GEPACallback]", [tracker]),  # implements the events it needs
            display_progress_bar=False,
            seed=cfg.seed,
            raise_on_exception=True,
        )
        return self._save(ctx, result, seed_prompt, adapter, reflection, tracker)

    def _save(
        self, ctx: RunContext, result: Any, seed_prompt: str, adapter: Any, reflection: _ReflectionLM, tracker: _Tracker
    ) -> RunResult:
        from evsys_gepa.adapter import COMPONENT

        cfg = self.config
        out = Path(ctx.output_dir)
        scores = [float(s) for s in result.val_aggregate_scores]
        best_idx = int(result.best_idx)
        best = str(result.best_candidate[COMPONENT])
        prompts_path = out / "prompts.json"
        saved = {
            "system_prompt": best,
            "score": scores[best_idx],
            "seed_prompt": seed_prompt,
            "seed_score": scores[0],
            "task_lm": cfg.task_lm,
            "system_prompt_mode": cfg.system_prompt_mode,
        }
        atomic_write_json(prompts_path, saved)
        atomic_write_json(out / "gepa" / "prompts.json", saved)  # state-final: a continual chain's next seed
        tree_path = out / "candidates.json"
        atomic_write_json(
            tree_path,
            {
                "best_idx": best_idx,
                "total_metric_calls": result.total_metric_calls,
                "num_full_val_evals": result.num_full_val_evals,
                "candidates": [
                    {
                        "idx": i,
                        "system_prompt": cand[COMPONENT],
                        "parents": [p for p in result.parents[i] if p is not None],
                        "val_score": scores[i],
                        "val_subscores": {str(k): float(v) for k, v in result.val_subscores[i].items()},
                        "discovered_at_metric_call": result.discovery_eval_counts[i],
                    }
                    for i, cand in enumerate(result.candidates)
                ],
            },
        )
        (out / "candidate_tree.dot").write_text(result.candidate_tree_dot(), encoding="utf-8")
        artifacts = {
            "final_prompt": str(prompts_path),
            "final_checkpoint": str(prompts_path),
            "state-final": str(out / "gepa"),
            "candidate_tree": str(tree_path),
        }
        ctx.log_store.log_artifact("final_prompt", str(prompts_path), kind="prompt")
        ctx.log_store.log_artifact("final_checkpoint", str(prompts_path), kind="checkpoint")
        ctx.log_store.log_artifact("candidate_tree", str(tree_path), kind="file")
        iterations = max((int(r["step"]) for r in tracker.rows), default=0)
        metrics = {
            "gepa/best_score": scores[best_idx],
            "gepa/seed_score": scores[0],
            "gepa/iterations": float(iterations),
            "gepa/metric_calls": float(result.total_metric_calls or 0),
            "gepa/n_candidates": float(len(scores)),
            "gepa/reflection_calls": float(reflection.calls),
            "gepa/generation_failures": float(adapter.failures),
        }
        metrics = {k: v for k, v in metrics.items() if not math.isnan(v)}
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts, extras={"best_prompt": best})
