"""Backend ``local``: loads a causal LM and its tokenizer on this machine (cuda > mps > cpu)."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.config import StrictModel
from evsys_sdk.params import FIXED


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


class LocalBackend:
    """``prepare`` returns handles: backend, model, tokenizer, model_name, device, dtype, run_dir,
    init_from_checkpoint, load_checkpoint_path, base_model, merged_adapters and ``load`` (a function
    loading fresh weights from a checkpoint or another model: a combo phase's predecessor, a DPO
    reference, a distillation teacher or student)."""

    name: ClassVar[str] = "local"
    Config = LocalBackendConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        from evsys_local._env import require_stack, resolve_device, resolve_dtype

        require_stack()
        from evsys_local.checkpoints import load_weights

        device = resolve_device(self.config.device)
        dtype = resolve_dtype(self.config.dtype, device)
        name = str(model["name"])
        if Path(name).expanduser().is_dir():  # checkpoints record their base: keep it valid from any cwd
            name = str(Path(name).expanduser().resolve())
        trust = self.config.trust_remote_code

        def load(checkpoint: str | None = None) -> tuple[Any, str, list[str]]:
            """Fresh weights: the run's model, a checkpoint directory (adapters merged) or another model."""
            from evsys_local.checkpoints import is_checkpoint, load_causal_lm

            if checkpoint and is_checkpoint(checkpoint):
                return load_weights(checkpoint, dtype=dtype, device=device, fallback_base=name, trust_remote_code=trust)
            source = checkpoint or name
            return load_causal_lm(source, dtype=dtype, device=device, trust_remote_code=trust), source, []

        init = model.get("init_from_checkpoint")
        lm, base, merged = load(init)
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

    from evsys_sdk.errors import EvsysError

    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
    except OSError as exc:
        raise EvsysError(f"could not load the tokenizer of '{name}': {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
