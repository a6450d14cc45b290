"""What the TRL-based algorithms share: params, trainer arguments, the evsys callback, checkpoints.

No heavy import at module level: the registered Config classes live here and must stay cheap.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.families import TrainingParams, save_steps
from evsys_sdk.spec.params import FIXED, search
from evsys_sdk.spec.protocols import RunContext, RunResult

# TRL/transformers log keys -> evsys metric names.
METRIC_NAMES = {
    "loss": "train/loss",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
    "entropy": "train/entropy",
    "mean_token_accuracy": "train/mean_token_accuracy",
    "kl": "train/kl",
    "completions/mean_length": "rollout/mean_completion_length",
    "rewards/margins": "dpo/reward_margin",
    "rewards/accuracies": "dpo/reward_accuracy",
    "logps/chosen": "dpo/chosen_logp",
    "logps/rejected": "dpo/rejected_logp",
}


class LocalTrainerParams(StrictModel):
    """Params of the local (TRL/PEFT) implementations beyond the family's shared ones."""

    gradient_accumulation_steps: int = Field(
        default=1, ge=1, description="batches whose gradients add up to one optimizer step"
    )
    warmup_steps: int = Field(default=0, ge=0, description="steps the learning rate ramps up from 0")
    lr_scheduler_type: Literal["linear", "constant", "cosine", "constant_with_warmup"] = Field(
        default="linear", description="the learning-rate schedule after warm-up"
    )
    weight_decay: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="AdamW's decoupled weight decay",
        json_schema_extra=search(uniform=(0.0, 0.1)),
    )
    max_grad_norm: float = Field(default=1.0, ge=0, description="clip the gradient norm to this (0 = no clipping)")
    logging_steps: int = Field(default=1, ge=1, description="log metrics every N steps", json_schema_extra=FIXED)
    lora_alpha: int | None = Field(default=None, ge=1, description="LoRA scaling numerator (default: 2 x lora_rank)")
    lora_dropout: float = Field(default=0.0, ge=0, lt=1, description="dropout on the LoRA adapters' input")
    lora_target_modules: str | list[str] = Field(
        default="all-linear", description="modules that get adapters: PEFT's 'all-linear' or a list of names"
    )


def require_local(ctx: RunContext, algorithm: str) -> dict[str, Any]:
    handles = ctx.extras.get("backend_handles") or {}
    if not isinstance(handles, dict) or handles.get("backend") != "local":
        got = handles.get("backend") if isinstance(handles, dict) else None
        raise EvsysError(f"{algorithm} requires backend kind 'local' (got '{got}'); set backend.kind: local")
    return handles


def distributed(algorithm: Any, ctx: RunContext, handles: dict[str, Any]) -> RunResult | None:
    """With backend ``num_processes > 1`` (this process loaded no model): the arm trained as a torchrun
    job of that many ranks; else None and the caller trains here."""
    if "launch" not in handles:
        return None
    from evsys_local.distributed.launch import train_distributed

    return train_distributed(algorithm, ctx, handles)


def per_device(handles: dict[str, Any], batch: int, what: str) -> int:
    """A rank's share of a global batch: the optimizer step sees the same rows at any process count."""
    world = int(handles.get("num_processes", 1))
    if batch % world:
        raise EvsysError(
            f"{what} {batch} does not split evenly over backend num_processes: {world}; "
            f"use a multiple of {world} (each process takes an equal share of every step's batch)"
        )
    return batch // world


def starting_model(ctx: RunContext, handles: dict[str, Any]) -> tuple[Any, str, list[str]]:
    """The weights this run starts from: a combo phase's predecessor when there is one, else the
    backend's model (which already applied ``model.init_from_checkpoint``)."""
    init = ctx.extras.get("init_checkpoint")
    if init and init != handles.get("init_from_checkpoint"):
        model, base, merged = handles["load"](init, quantized=True)
        return model, base, merged
    return (
        handles["model"],
        str(handles.get("base_model") or handles["model_name"]),
        list(handles.get("merged_adapters") or []),
    )


def peft_config(params: TrainingParams, local: LocalTrainerParams, handles: dict[str, Any]) -> Any:
    bits = handles.get("quantization", "none")
    if params.lora_rank == 0:
        if bits != "none":
            raise EvsysError(
                f"backend quantization: {bits} freezes the base weights and trains LoRA adapters on them (QLoRA); "
                "set lora_rank > 0, or quantization: none for full fine-tuning"
            )
        return None  # full fine-tuning
    from peft import LoraConfig

    return LoraConfig(
        r=params.lora_rank,
        lora_alpha=local.lora_alpha or 2 * params.lora_rank,
        lora_dropout=local.lora_dropout,
        target_modules=local.lora_target_modules,
        task_type="CAUSAL_LM",
    )


def trainer_args(params: Any, handles: dict[str, Any], output_dir: str, total: int) -> dict[str, Any]:
    """Keyword args shared by the TRL configs, with the CPU-safe settings spelled out (TRL 1.x defaults
    to bf16 and gradient checkpointing even on CPU); the backend's mixed_precision and
    gradient_checkpointing decide them. bfloat16 weights on CUDA compute in bf16 as before."""
    device = str(handles.get("device", "cpu"))
    precision = handles.get("mixed_precision", "no")
    bf16 = precision == "bf16" or (handles.get("dtype") == "bfloat16" and device.startswith("cuda"))
    return {
        "output_dir": output_dir,
        "max_steps": total,
        "learning_rate": params.learning_rate,
        "gradient_accumulation_steps": params.gradient_accumulation_steps,
        "warmup_steps": params.warmup_steps,
        "lr_scheduler_type": params.lr_scheduler_type,
        "weight_decay": params.weight_decay,
        "max_grad_norm": params.max_grad_norm,
        "logging_steps": params.logging_steps,
        "activation_checkpointing": bool(handles.get("gradient_checkpointing", False)),  # transformers 5 name
        "seed": params.seed,
        "data_seed": params.seed,
        "use_cpu": device == "cpu",
        "bf16": bf16,
        "fp16": precision == "fp16",
        "report_to": "none",
        "save_strategy": "no",  # the evsys callback decides when to save (save_at_fractions, save_every)
        "save_only_model": False,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        **fsdp_args(handles),
    }


def fsdp_args(handles: dict[str, Any]) -> dict[str, Any]:
    """Trainer args of ``strategy: fsdp`` (accelerate's FSDP2): the wrap policy is transformer-layer based,
    one FSDP unit per decoder layer (the classes the model lists in ``_no_split_modules``), full shard;
    weights are gathered into one full state dict at save, so checkpoints load like ddp ones."""
    if handles.get("strategy") != "fsdp" or int(handles.get("num_processes", 1)) == 1:
        return {}
    layers = list(getattr(handles.get("model"), "_no_split_modules", None) or [])
    config: dict[str, Any] = {"version": 2, "reshard_after_forward": True, "state_dict_type": "FULL_STATE_DICT"}
    if layers:
        config |= {"auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "transformer_layer_cls_to_wrap": layers}
    else:
        config |= {"auto_wrap_policy": "SIZE_BASED_WRAP", "min_num_params": 100_000_000}
    return {"fsdp": True, "fsdp_config": config}


def checkpoint_steps(params: TrainingParams, total: int) -> set[int]:
    every = params.save_every
    marks = set(save_steps(params.save_at_fractions, total)) | {total}
    return marks | ({s for s in range(every, total + 1, every)} if every else set())


def make_callback(
    ctx: RunContext, tokenizer: Any, marks: set[int], extra_metrics: Any = None, manifest: dict[str, Any] | None = None
) -> Any:
    """A TrainerCallback forwarding logs to the run's log store, saving at ``marks`` and calling the
    in-loop validation callback after every step with a factory of a client on the live model."""
    from transformers import TrainerCallback

    from evsys_local.checkpoints import write_manifest

    class EvsysCallback(TrainerCallback):  # type: ignore[misc]
        def __init__(self) -> None:
            self.last_loss: float | None = None
            self.last: dict[str, float] = {}  # the latest value of every metric logged
            self.saved: dict[int, str] = {}
            self._tok_clock: tuple[float, float] | None = None
            self._live: Any = None

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kw: Any) -> None:
            logs = logs or {}
            metrics = {METRIC_NAMES[k]: float(v) for k, v in logs.items() if k in METRIC_NAMES and v is not None}
            if "num_tokens" in logs:  # cumulative tokens -> throughput since the previous log
                now, tokens = time.perf_counter(), float(logs["num_tokens"])
                if self._tok_clock is not None and now > self._tok_clock[0]:
                    metrics["train/tokens_per_second"] = (tokens - self._tok_clock[1]) / (now - self._tok_clock[0])
                self._tok_clock = (now, tokens)
            if "train/loss" in metrics:
                self.last_loss = metrics["train/loss"]
            if extra_metrics is not None:
                metrics.update(extra_metrics(state.global_step))
            if metrics:
                self.last.update(metrics)
                ctx.log_store.log_metrics(metrics, int(state.global_step))

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._tok_clock = None

        def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            if state.global_step in marks:
                control.should_save = True
            ctx.validate(int(state.global_step), lambda: self.live(model))
            ctx.check_budget()

        def live(self, model: Any) -> Any:
            """An inference client on the live model, built once (only when validation is due)."""
            from evsys_local.inference import LocalInference

            if self._live is None or self._live._model is not model:
                self._live = LocalInference.from_model(model, tokenizer)
            return self._live

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if path.exists() and args.should_save:  # rank 0 of a distributed job
                if manifest is not None:
                    write_manifest(path, **manifest)
                self.saved[int(state.global_step)] = str(path)

    return EvsysCallback()


def quiet(trainer: Any) -> Any:
    """Drop the stdout printer transformers adds when tqdm is off: metrics go to the log store."""
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    return trainer


def finish_checkpoints(
    ctx: RunContext, trainer: Any, tokenizer: Any, callback: Any, total: int, manifest: dict[str, Any]
) -> dict[str, str]:
    """Write ``final`` (what inference loads) and move the last trainer checkpoint to ``state-final``
    (weights + optimizer + scheduler: what resume and continual chains start from)."""
    from evsys_local.checkpoints import write_manifest

    out = Path(ctx.output_dir)
    final = out / "final"
    trainer.save_model(str(final))  # every rank takes part (FSDP gathers the shards); rank 0 writes
    trainer.accelerator.wait_for_everyone()  # the ranks' own checkpoint files are written by now
    if not trainer.args.should_save:
        return {}
    tokenizer.save_pretrained(str(final))
    write_manifest(final, **manifest)
    artifacts = {"final_checkpoint": str(final)}
    last = callback.saved.get(total) or str(out / f"checkpoint-{total}")
    state = out / "state-final"
    if state.exists():
        shutil.rmtree(state)
    if Path(last).exists():
        Path(last).rename(state)
    else:  # a resumed run that was already complete saves nothing: keep the final weights as state
        shutil.copytree(final, state)
    callback.saved[total] = str(state)
    for step, path in sorted(callback.saved.items()):
        artifacts[f"ckpt_step_{step}"] = path
        ctx.log_store.log_artifact(f"ckpt_step_{step}", path, kind="checkpoint")
    artifacts["state-final"] = str(state)
    ctx.log_store.log_artifact("final_checkpoint", str(final), kind="checkpoint")
    ctx.log_store.log_artifact("state-final", str(state), kind="checkpoint")
    return artifacts


def resume_path(handles: dict[str, Any]) -> str | None:
    path = handles.get("load_checkpoint_path")
    if path and not (Path(path) / "trainer_state.json").exists():
        raise EvsysError(
            f"model.load_checkpoint_path '{path}' is not a resumable training state (no trainer_state.json); "
            "give a state-final or checkpoint-N directory of a local run, or use model.init_from_checkpoint "
            "to start fresh from its weights"
        )
    return str(path) if path else None


def manifest_for(base: str, merged: list[str], lora: bool) -> dict[str, Any]:
    return {"base_model": base, "merged": merged, "adapter": lora}
