"""``local_rl`` (family ``rl`` on backend local): TRL GRPOTrainer with LoRA, rewards from evsys verifiers.

Rows are Harbor tasks (reward = the task's in-process verifier function) or prompt rows scored by a
registry verifier (``verifier_kind``; its target is the row without its prompt).
"""

from __future__ import annotations

import importlib.util
import statistics
from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from evsys_local.common import LocalTrainerParams
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.families import RLParams, total_steps
from evsys_sdk.spec.params import FIXED
from evsys_sdk.spec.protocols import RunContext, RunResult


class LocalRLConfig(RLParams, LocalTrainerParams):
    num_samples: int = Field(default=4, ge=2, description="GRPO group size (completions per prompt)")
    temperature: float = Field(default=1.0, gt=0, description="sampling temperature of rollouts")
    beta: float = Field(default=0.0, ge=0, description="KL coefficient; > 0 keeps a reference model")
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        default="dapo", description="TRL's GRPO loss normalisation"
    )
    verifier_kind: str | None = Field(default=None, description="registry verifier for prompt rows")
    verifier_params: dict[str, Any] = Field(default_factory=dict, description="that verifier's params")
    verifier_name: str | None = Field(default=None, description="verifier fn for tasks without fn_name")
    system_prompt: str | None = Field(default=None, description="a system message before each task")
    user_template: str = Field(default="{prompt}", description="the prompt: a format string over the task's fields")
    # TRL's vLLM generation, passed through as is (it needs CUDA and `pip install vllm`).
    use_vllm: bool = Field(
        default=False, description="generate rollouts with vLLM instead of model.generate", json_schema_extra=FIXED
    )
    vllm_mode: Literal["colocate", "server"] = Field(
        default="colocate",
        description="colocate: vLLM inside each training process; server: a `trl vllm-serve` process",
        json_schema_extra=FIXED,
    )
    vllm_server_base_url: str | None = Field(
        default=None, description="server mode: the server's URL (overrides host and port)", json_schema_extra=FIXED
    )
    vllm_server_host: str = Field(default="0.0.0.0", description="server mode: its host", json_schema_extra=FIXED)
    vllm_server_port: int = Field(
        default=8000, ge=1, le=65535, description="server mode: its port", json_schema_extra=FIXED
    )
    vllm_server_timeout: float = Field(
        default=240.0, gt=0, description="server mode: seconds to wait for the server", json_schema_extra=FIXED
    )
    vllm_gpu_memory_utilization: float = Field(
        default=0.3, gt=0, le=1, description="colocate mode: share of each GPU's memory vLLM takes"
    )
    vllm_tensor_parallel_size: int = Field(
        default=1, ge=1, description="colocate mode: GPUs one vLLM engine spans", json_schema_extra=FIXED
    )
    vllm_enable_sleep_mode: bool = Field(
        default=False, description="colocate mode: free vLLM's memory while the model trains"
    )
    vllm_max_model_length: int | None = Field(
        default=None, ge=1, description="colocate mode: vLLM's context length (default: the model's)"
    )

    @model_validator(mode="after")
    def _vllm_usable(self) -> LocalRLConfig:
        """vLLM options only with use_vllm, and use_vllm only where vLLM is installed: before any arm."""
        changed = sorted(k for k in VLLM_OPTIONS if k in self.model_fields_set and k != "use_vllm")
        if changed and not self.use_vllm:
            raise ValueError(f"{', '.join(changed)} only apply with use_vllm: true; set it, or drop them")
        if self.use_vllm and importlib.util.find_spec("vllm") is None:
            raise ValueError(
                "use_vllm: true needs vLLM, which is not installed: pip install vllm (on a CUDA machine), "
                "or set use_vllm: false to generate with the training model"
            )
        return self

    def vllm_args(self) -> dict[str, Any]:
        """The vLLM options as GRPOConfig keyword args."""
        return {key: getattr(self, key) for key in VLLM_OPTIONS}


VLLM_OPTIONS = (
    "use_vllm",
    "vllm_mode",
    "vllm_server_base_url",
    "vllm_server_host",
    "vllm_server_port",
    "vllm_server_timeout",
    "vllm_gpu_memory_utilization",
    "vllm_tensor_parallel_size",
    "vllm_enable_sleep_mode",
    "vllm_max_model_length",
)


Scorer = Callable[[str], float]


def build_tasks(rows: list[dict[str, Any]], cfg: LocalRLConfig) -> list[tuple[str, Scorer]]:
    """``(user prompt, score(completion))`` per row."""
    from evsys_sdk.builtins.verifier_fns import get_fn, verify_task
    from evsys_sdk.spec.data_types import InProcessVerifier, detect_format, harbor_task_from_dict

    registry_verifier: Any = None
    tasks: list[tuple[str, Scorer]] = []
    for i, row in enumerate(rows):
        if detect_format(row) == "harbor_task":
            task = harbor_task_from_dict(row)
            verifier = task.verifier
            if not isinstance(verifier, InProcessVerifier):
                raise EvsysError(f"local_rl: task '{task.task_id}' needs an in_process verifier to score on CPU")
            if not verifier.fn_name:
                if not cfg.verifier_name:
                    raise EvsysError(f"local_rl: task '{task.task_id}' has no verifier fn_name; set verifier_name")
                fn = get_fn(cfg.verifier_name)
                tasks.append((task.instruction, lambda c, f=fn, v=verifier: float(f(c, v.expected, dict(v.params)))))
            else:
                get_fn(verifier.fn_name)  # unknown names fail before training starts
                tasks.append((task.instruction, lambda c, t=task: verify_task(t, c).reward))
        elif isinstance(row.get("prompt"), str):
            if cfg.verifier_kind is None:
                raise EvsysError(
                    f"local_rl: row {i} is a prompt row; set verifier_kind (a registry verifier) to score it, "
                    "or give Harbor tasks with in_process verifiers"
                )
            if registry_verifier is None:
                from evsys_sdk.plugins.registry import get_verifier

                registry_verifier = get_verifier(cfg.verifier_kind)(**cfg.verifier_params)
            target = {k: v for k, v in row.items() if k != "prompt"}
            prompt = row["prompt"]
            tasks.append(
                (
                    prompt,
                    lambda c, p=prompt, t=target, v=registry_verifier: float(
                        v.verify(prompt=p, completion=c, target=t).reward
                    ),
                )
            )
        else:
            raise EvsysError(f"local_rl: row {i} is neither a Harbor task nor a prompt row (keys: {sorted(row)})")
    return tasks


class LocalRL:
    name: ClassVar[str] = "local_rl"
    Config = LocalRLConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_local.common import require_local

        handles = require_local(ctx, self.name)
        cfg = self.config
        tasks = build_tasks(list(ctx.extras.get("train_rows") or []), cfg)
        if not tasks:
            raise EvsysError("local_rl: no train rows (check run.data)")
        from evsys_local.common import distributed, per_device

        rollouts = cfg.batch_size * cfg.num_samples
        per_device_batch = per_device(handles, rollouts, "local_rl: batch_size x num_samples =")
        if (launched := distributed(self, ctx, handles)) is not None:
            return launched

        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from evsys_local.common import (
            checkpoint_steps,
            finish_checkpoints,
            make_callback,
            manifest_for,
            peft_config,
            quiet,
            resume_path,
            starting_model,
            trainer_args,
        )

        total = total_steps(cfg, len(tasks))
        model, base, merged = starting_model(ctx, handles)
        tokenizer = handles["tokenizer"]
        tokenizer.padding_side = "left"
        lora = peft_config(cfg, cfg, handles)
        manifest = manifest_for(base, merged, lora is not None)
        system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
        dataset = Dataset.from_list(
            [
                {"prompt": [*system, {"role": "user", "content": cfg.user_template.format(prompt=p)}], "row_index": i}
                for i, (p, _) in enumerate(tasks)
            ]
        )
        pending: list[float] = []
        history: list[tuple[float, float]] = []

        def reward(completions: list[Any], row_index: list[int], **kw: Any) -> list[float]:
            texts = [c[-1]["content"] if isinstance(c, list) else str(c) for c in completions]
            values = [tasks[i][1](t) for i, t in zip(row_index, texts, strict=True)]
            pending.extend(values)
            return values

        reward.__name__ = "evsys_verifier"

        def reward_metrics(step: int) -> dict[str, float]:
            values = _all_ranks(pending)  # every rank logs at the same steps: the gather is collective
            pending.clear()
            if not values:
                return {}
            mean, std = statistics.fmean(values), statistics.pstdev(values)
            out = {"reward/mean": mean, "reward/std": std, "reward/n_trajectories": float(len(values))}
            history.append((mean, std))
            return out

        ctx.log_store.log_hyperparams(
            {"algorithm": self.name, **cfg.model_dump(), "total_steps": total, "n_tasks": len(tasks)}
        )
        args = GRPOConfig(
            **trainer_args(cfg, handles, ctx.output_dir, total),
            per_device_train_batch_size=per_device_batch,
            num_generations=cfg.num_samples,
            max_completion_length=cfg.max_tokens,
            temperature=cfg.temperature,
            beta=cfg.beta,
            loss_type=cfg.loss_type,
            **cfg.vllm_args(),
        )
        callback = make_callback(
            ctx, tokenizer, checkpoint_steps(cfg, total), extra_metrics=reward_metrics, manifest=manifest
        )
        trainer = GRPOTrainer(
            model=model,
            reward_funcs=[reward],
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[callback, *ctx.extras.get("local_trainer_callbacks", [])],
        )
        quiet(trainer).train(resume_from_checkpoint=resume_path(handles))
        artifacts = finish_checkpoints(ctx, trainer, tokenizer, callback, total, manifest)
        metrics: dict[str, float] = {"total_steps": float(total)}
        if history:
            metrics.update({"reward/mean": history[-1][0], "reward/std": history[-1][1]})
            metrics["reward/first_mean"] = history[0][0]
        if callback.last_loss is not None:
            metrics["train/final_loss"] = callback.last_loss
        return RunResult(ctx.run_id, "completed", metrics=metrics, artifacts=artifacts)


def _all_ranks(values: list[float]) -> list[float]:
    """The rewards of every rank of a distributed job (this rank's alone in one process)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return list(values)
    gathered: list[list[float] | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, list(values))
    return [v for part in gathered for v in part or []]
