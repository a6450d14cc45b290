"""Backend ``local``: loads a causal LM and its tokenizer on this machine (cuda > mps > cpu)."""

from __future__ import annotations

import gc
import importlib.util
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.params import FIXED


class LocalBackendConfig(StrictModel):
    device: str = Field(
        default="auto", description="torch device (auto: cuda, then mps, else cpu)", json_schema_extra=FIXED
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="weights' dtype (auto: bfloat16 where supported, else float32)"
    )
    # Off by default: remote code runs arbitrary Python from the model repository.
    trust_remote_code: bool = Field(
        default=False, description="run Python shipped with the model repository", json_schema_extra=FIXED
    )
    num_processes: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="training processes of one arm (1: train in this process; more: a torchrun job, one per device)",
        json_schema_extra=FIXED,
    )
    strategy: Literal["ddp", "fsdp"] = Field(
        default="ddp",
        description="how several processes share the work: replicate (ddp) or shard the weights (fsdp, CUDA only)",
        json_schema_extra=FIXED,
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = Field(
        default="no",
        description="autocast the forward pass over float32 master weights (no: compute in the weights' dtype)",
    )
    # Off by default: on CPU it halves the step speed for no memory win on small models.
    gradient_checkpointing: bool = Field(
        default=False, description="recompute activations in the backward pass (less memory, slower)"
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        default="none",
        description="load the frozen base weights quantized by bitsandbytes and train LoRA on them (QLoRA; CUDA)",
        json_schema_extra=FIXED,
    )

    @model_validator(mode="after")
    def _runs_here(self) -> LocalBackendConfig:
        """Refuse what cannot work on this machine or is not built yet, before any arm starts."""
        if self.strategy == "fsdp":
            if self.num_processes == 1:
                raise ValueError("strategy: fsdp shards weights across processes and needs num_processes > 1; use ddp")
            if not self.device.startswith("cuda") and not (self.device == "auto" and _has_cuda()):
                # accelerate shards only over GPUs: on CPU it would quietly train as ddp instead.
                raise ValueError(
                    f"strategy: fsdp needs CUDA GPUs (accelerate shards only over GPU devices) and this device is "
                    f"{self._device_text()}; use strategy: ddp here"
                )
        allowed = {"no": (self.dtype,), "bf16": ("auto", "float32", "bfloat16"), "fp16": ("float32",)}
        if self.dtype not in allowed[self.mixed_precision]:
            raise ValueError(
                f"mixed_precision: {self.mixed_precision} autocasts over float32 master weights, not dtype "
                f"{self.dtype}; set dtype: float32"
            )
        cuda = self.quantization != "none" or self.mixed_precision == "fp16"
        if cuda and not self.device.startswith("cuda") and not (self.device == "auto" and _has_cuda()):
            what = f"quantization: {self.quantization}" if self.quantization != "none" else "mixed_precision: fp16"
            raise ValueError(f"{what} needs a CUDA GPU and this device is {self._device_text()}; " + self._fix())
        if self.quantization != "none":
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ValueError(
                    f"quantization: {self.quantization} needs bitsandbytes, which is not installed: "
                    "pip install bitsandbytes (on a CUDA machine)"
                )
            if self.strategy == "fsdp":
                raise ValueError(f"quantization: {self.quantization} with strategy: fsdp is not supported; use ddp")
        return self

    def _device_text(self) -> str:
        return "cpu (auto found no CUDA)" if self.device == "auto" else self.device

    def _fix(self) -> str:
        if self.quantization != "none":
            return "use quantization: none here, or a CUDA machine with pip install bitsandbytes"
        return "use mixed_precision: bf16 or no here"


def _has_cuda() -> bool:
    """Whether torch sees a CUDA GPU; torch is imported only for the options that need one."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return bool(torch.cuda.is_available())


class LocalBackend:
    """``prepare`` returns handles: backend, model, tokenizer, model_name, device, dtype, run_dir,
    init_from_checkpoint, load_checkpoint_path, base_model, merged_adapters and ``load`` (a function
    loading fresh weights from a checkpoint or another model: a combo phase's predecessor, a DPO
    reference, a distillation teacher or student).

    With ``num_processes > 1`` this process loads nothing: the handles say ``launch`` and the algorithm
    runs as a torchrun job whose every rank calls ``load_rank`` (the same handles, on its own device).
    """

    name: ClassVar[str] = "local"
    Config = LocalBackendConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        if self.config.num_processes == 1:
            return self.load_rank(model=model, run_dir=run_dir)
        from evsys_local._env import require_stack

        require_stack(load=False)  # the ranks import the stack; here it only has to be installed
        return {
            "backend": "local",
            "model_name": str(model["name"]),
            "run_dir": run_dir,
            "init_from_checkpoint": model.get("init_from_checkpoint"),
            "load_checkpoint_path": model.get("load_checkpoint_path"),
            "num_processes": self.config.num_processes,
            "launch": {
                "num_processes": self.config.num_processes,
                "backend_params": self.config.model_dump(),
                "model": model,
            },
        }

    def load_rank(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        """The handles of one training process: the model and tokenizer loaded here (a rank of a
        distributed job uses the GPU of its LOCAL_RANK)."""
        import os

        from evsys_local._env import require_stack, resolve_device, resolve_dtype

        require_stack()
        from evsys_local.checkpoints import load_weights

        device = resolve_device(self.config.device)
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and device.startswith("cuda"):
            import torch

            device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"
            torch.cuda.set_device(device)
        dtype = resolve_dtype(self.config.dtype, device)
        name = str(model["name"])
        if Path(name).expanduser().is_dir():  # checkpoints record their base: keep it valid from any cwd
            name = str(Path(name).expanduser().resolve())
        trust, quantization = self.config.trust_remote_code, self.config.quantization

        def load(checkpoint: str | None = None, *, quantized: bool = False) -> tuple[Any, str, list[str]]:
            """Fresh weights: the run's model, a checkpoint directory (adapters merged) or another model;
            ``quantized``: with the backend's quantization (the model a run trains adapters on)."""
            from evsys_local.checkpoints import is_checkpoint, load_causal_lm

            bits = quantization if quantized else "none"
            if checkpoint and is_checkpoint(checkpoint):
                return load_weights(
                    checkpoint, dtype=dtype, device=device, fallback_base=name, trust_remote_code=trust, bits=bits
                )
            source = checkpoint or name
            lm = load_causal_lm(source, dtype=dtype, device=device, trust_remote_code=trust, bits=bits)
            return lm, source, []

        init = model.get("init_from_checkpoint")
        lm, base, merged = load(init, quantized=True)
        tokenizer = load_tokenizer(name, trust_remote_code=trust)
        if lm.generation_config is not None and lm.generation_config.pad_token_id is None:
            lm.generation_config.pad_token_id = tokenizer.pad_token_id
        return {
            "backend": "local",
            "model": lm,
            "tokenizer": tokenizer,
            "model_name": name,
            "base_model": base,
            "merged_adapters": merged,
            "device": device,
            "dtype": str(dtype).removeprefix("torch."),
            "run_dir": run_dir,
            "init_from_checkpoint": init,
            "load_checkpoint_path": model.get("load_checkpoint_path"),
            "load": load,
            "mixed_precision": self.config.mixed_precision,
            "gradient_checkpointing": self.config.gradient_checkpointing,
            "quantization": quantization,
            "num_processes": world,
            "strategy": self.config.strategy,
        }

    def teardown(self, handles: dict[str, Any]) -> None:
        handles.pop("model", None)
        handles.pop("load", None)
        gc.collect()
        try:
            import torch
        except ImportError:
            return
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mps = getattr(torch, "mps", None)
        if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            mps.empty_cache()


def load_tokenizer(name: str, *, trust_remote_code: bool = False) -> Any:
    """The tokenizer, with a pad token (eos when it has none)."""
    from transformers import AutoTokenizer

    from evsys_sdk.base.errors import EvsysError

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise EvsysError(f"could not load the tokenizer of '{name}': {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
