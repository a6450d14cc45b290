"""The training loop the three Tinker algorithms share (BEHAVIOR 1.13, Tinker-family base).

An algorithm supplies a ``Recipe``: it validates its rows before any client exists, then builds one
batch of ``tinker.Datum`` per step. The loop owns everything else: clients (fresh LoRA, resume with
optimizer from ``load_checkpoint_path``, weights only from ``init_from_checkpoint``), Adam params,
pipelined forward_backward + optim_step, checkpoints and their manifest, metrics, in-loop validation.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import tinker
from tinker import types

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.base.logger import get_logger
from evsys_sdk.spec.families import save_steps, total_steps
from evsys_sdk.spec.protocols import RunContext, RunResult
from evsys_tinker.config import TinkerTrainingParams
from evsys_tinker.seam import Connector, SamplingClient, Tokenizer, TrainingClient

log = get_logger("tinker")
MANIFEST = "checkpoints.jsonl"


class TinkerServiceError(EvsysError):
    """The Tinker service refused a request; the message is the service's own."""


@dataclass
class Batch:
    data: list[types.Datum]
    loss_fn: str
    loss_fn_config: dict[str, float] | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # A loss computed client-side (DPO): the service's loss is then only its linearisation.
    loss: float | None = None


@dataclass
class Session:
    """What a recipe may use while building batches."""

    ctx: RunContext
    connector: Connector
    training: TrainingClient
    tokenizer: Tokenizer
    model_name: str
    rng: np.random.Generator

    def sampler(self) -> SamplingClient:
        """A sampling client on the current weights (an ephemeral snapshot)."""
        client: SamplingClient = self.training.save_weights_and_get_sampling_client().result()
        return client


class Recipe(Protocol):
    def n_items(self) -> int:
        """Rows per epoch (validated, before any client is created)."""
        ...

    def setup(self, session: Session) -> None: ...
    def batch(self, session: Session, step: int) -> Batch: ...
    def hyperparams(self) -> dict[str, Any]: ...


def service_call(what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; a refusal by the service becomes a TinkerServiceError carrying its message."""
    try:
        return fn()
    except tinker.APIStatusError as exc:
        raise TinkerServiceError(f"Tinker {what} failed with HTTP {exc.status_code}: {exc.message}") from exc
    except tinker.RequestFailedError as exc:
        raise TinkerServiceError(f"Tinker {what} failed ({exc.category}): {exc.message}") from exc


def handles_of(ctx: RunContext, algorithm: str) -> dict[str, Any]:
    handles = ctx.extras.get("backend_handles") or {}
    if not isinstance(handles, dict) or handles.get("backend") != "tinker":
        got = handles.get("backend") if isinstance(handles, dict) else None
        raise EvsysError(
            f"{algorithm} requires backend=tinker (got '{got}'): set backend.kind: tinker, or use the family "
            "kind (sft, sdft, rl) so the implementation follows the backend"
        )
    return handles


def _init_checkpoint(ctx: RunContext, handles: dict[str, Any]) -> str | None:
    # A combo phase passes the previous phase's checkpoint in extras; a continual stage in model config.
    value = ctx.extras.get("init_checkpoint") or handles.get("init_from_checkpoint")
    return str(value) if value else None


def checkpoint_steps(config: TinkerTrainingParams, total: int) -> set[int]:
    """The same marks on every backend: ``save_at_fractions`` of the run plus multiples of ``save_every``."""
    every = getattr(config, "save_every", 0)
    marks = set(save_steps(getattr(config, "save_at_fractions", [1.0]), total))
    return marks | ({s for s in range(every, total + 1, every)} if every else set())


def train(algorithm: str, config: Any, recipe: Recipe, ctx: RunContext) -> RunResult:
    handles = handles_of(ctx, algorithm)
    n_items = recipe.n_items()  # validates every row before anything is allocated or billed
    model_name = handles.get("model_name") or ctx.extras.get("model_name")
    if not model_name:
        raise EvsysError(f"{algorithm} needs a model_name: set model.name to a Tinker base model")
    connector: Connector = ctx.extras.get("tinker_connector") or handles["connector"]
    resume = handles.get("load_checkpoint_path")
    init = _init_checkpoint(ctx, handles)
    if resume:
        training = service_call("resume", lambda: connector.training_client_from_state(resume, with_optimizer=True))
    elif init:
        training = service_call("init", lambda: connector.training_client_from_state(init, with_optimizer=False))
    else:
        training = service_call(
            "create_lora_training_client",
            lambda: connector.training_client(model_name, rank=config.lora_rank, seed=config.seed),
        )
    session = Session(
        ctx, connector, training, training.get_tokenizer(), model_name, np.random.default_rng(config.seed)
    )
    recipe.setup(session)
    total = total_steps(config, n_items)
    marks = checkpoint_steps(config, total)
    steps_per_epoch = max(1, n_items // config.batch_size)
    ctx.log_store.log_hyperparams(
        {
            "algorithm": algorithm,
            **config.model_dump(),
            "model_name": model_name,
            "total_steps": total,
            "checkpoint_steps": sorted(marks),
            "resumed_from": resume,
            "init_from": init,
            **recipe.hyperparams(),
        }
    )
    adam = types.AdamParams(
        learning_rate=config.learning_rate,
        beta1=config.adam_beta1,
        beta2=config.adam_beta2,
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
        grad_clip_norm=config.grad_clip_norm,
    )
    run_dir = Path(ctx.output_dir)
    manifest = run_dir / MANIFEST
    manifest.unlink(missing_ok=True)  # a fresh run starts a fresh manifest
    artifacts: dict[str, str] = {"run_dir": str(run_dir)}
    losses: list[float] = []
    last: dict[str, float] = {}
    for step in range(1, total + 1):
        ctx.check_budget()
        started = time.perf_counter()
        batch = recipe.batch(session, step)
        metrics = dict(batch.metrics)
        if batch.data:
            # Submitted back to back: requests on one client run in order, so the optimizer step is
            # queued while forward_backward computes, and both are awaited together.
            fb = training.forward_backward(batch.data, batch.loss_fn, batch.loss_fn_config)
            op = training.optim_step(adam)
            output = service_call("forward_backward", fb.result)
            optim = service_call("optim_step", op.result)
            metrics.update(_loss_metrics(batch, output))
            for key, value in (getattr(optim, "metrics", None) or {}).items():
                metrics[f"optim/{key}"] = float(value)
            losses.append(metrics["train/loss"])
        metrics.update(
            {
                "progress/step": float(step),
                "progress/fraction": step / total,
                "progress/epoch": float((step - 1) // steps_per_epoch),
                "optim/learning_rate": config.learning_rate,
                "time/step_seconds": time.perf_counter() - started,
            }
        )
        ctx.log_store.log_metrics(metrics, step)
        last = metrics
        if step in marks and step != total:
            _checkpoint(ctx, training, config, f"step-{step:06d}", step, final=False, artifacts=artifacts)
        ctx.validate(step, _LazySampler(session))
    _checkpoint(ctx, training, config, "final", total, final=True, artifacts=artifacts)
    final: dict[str, float] = {"total_steps": float(total)}
    if losses:
        final["train/final_loss"] = losses[-1]
    for key in ("reward/mean", "reward/std", "dpo/reward_margin", "dpo/reward_accuracy"):
        if key in last:
            final[key] = last[key]
    if "reward/mean" in last:
        final["train/final_reward"] = last["reward/mean"]
    return RunResult(ctx.run_id, "completed", metrics=final, artifacts=artifacts)


def _loss_metrics(batch: Batch, output: types.ForwardBackwardOutput) -> dict[str, float]:
    """``train/loss``: the recipe's own loss when it computed one, the mean negative target logprob per
    weighted token (cross_entropy), else the service's summed loss per trained token."""
    if batch.loss is not None:
        return {"train/loss": batch.loss}
    if batch.loss_fn == "cross_entropy":
        total = weight = 0.0
        for datum, out in zip(batch.data, output.loss_fn_outputs, strict=True):
            lp = out["logprobs"].to_numpy()
            w = datum.loss_fn_inputs["weights"].to_numpy()
            total += float(-(lp * w).sum())
            weight += float(w.sum())
        loss = total / weight if weight else 0.0
        return {"train/loss": loss, "train/loss_n_tokens": weight, "train/mean_logprob": -loss}
    n_tokens = sum(float((d.loss_fn_inputs["advantages"].to_numpy() != 0).sum()) for d in batch.data)
    loss_sum = float(output.metrics.get("loss:sum", 0.0))
    return {"train/loss": loss_sum / n_tokens if n_tokens else loss_sum, "train/loss_n_tokens": n_tokens}


def _checkpoint(
    ctx: RunContext,
    training: TrainingClient,
    config: Any,
    name: str,
    step: int,
    *,
    final: bool,
    artifacts: dict[str, str],
) -> None:
    ttl = config.ttl_seconds
    state = service_call("save_state", lambda: training.save_state(name, ttl_seconds=ttl).result()).path
    sampler = service_call(
        "save_weights_for_sampler", lambda: training.save_weights_for_sampler(name, ttl_seconds=ttl).result()
    ).path
    record = {
        "name": name,
        "step": step,
        "final": final,
        "state_path": state,
        "sampler_path": sampler,
        "ts": time.time(),
    }
    with open(Path(ctx.output_dir) / MANIFEST, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    label = "final" if final else str(step)
    artifacts[f"checkpoint-{label}"] = sampler
    artifacts[f"state-{label}"] = state
    if final:
        artifacts["final_checkpoint"] = sampler
    ctx.log_store.log_artifact(f"checkpoint-{label}", sampler, kind="checkpoint")
    ctx.log_store.log_artifact(f"state-{label}", state, kind="checkpoint")


class _LazySampler:
    """The in-loop validation client: snapshots the weights only if the callback actually generates."""

    name = "tinker_snapshot"

    def __init__(self, session: Session) -> None:
        self._session = session
        self._client: Any = None

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        from evsys_tinker.inference import SamplerInference

        if self._client is None:
            self._client = SamplerInference(self._session.sampler(), self._session.tokenizer)
        text: str = self._client.generate(prompt=prompt, max_tokens=max_tokens, temperature=temperature, stop=stop)
        return text


def read_manifest(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return 0.0, 0.0
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
