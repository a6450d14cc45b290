"""Checkpoint directories and how to load a model from one.

A checkpoint holds either full weights (``config.json`` + safetensors) or a PEFT adapter
(``adapter_config.json``). An adapter trained on top of earlier adapters (continual chains, combo
phases) records them in ``evsys_checkpoint.json``, so loading merges the chain in order and then the
adapter itself: the weights served are exactly the weights trained.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from evsys_sdk.base.errors import EvsysError

MANIFEST = "evsys_checkpoint.json"


def read_manifest(path: str | Path) -> dict[str, Any]:
    file = Path(path) / MANIFEST
    if not file.exists():
        return {}
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data


def write_manifest(path: str | Path, *, base_model: str, merged: list[str], adapter: bool) -> None:
    file = Path(path) / MANIFEST
    file.parent.mkdir(parents=True, exist_ok=True)
    payload = {"base_model": base_model, "merged_adapters": merged, "adapter": adapter}
    file.write_text(json.dumps(payload, indent=2), encoding="utf-8")


def is_adapter(path: str | Path) -> bool:
    return (Path(path) / "adapter_config.json").exists()


def is_checkpoint(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (is_adapter(p) or (p / "config.json").exists())


def lineage(path: str | Path, fallback_base: str | None = None) -> tuple[str, list[str]]:
    """``(base model, adapters to merge in order)`` whose merge reproduces this checkpoint's weights."""
    p = Path(path).resolve()
    if not is_checkpoint(p):
        raise EvsysError(
            f"'{path}' is not a model checkpoint (no config.json or adapter_config.json); "
            "pass a final_checkpoint or state-final directory of an earlier run"
        )
    if not is_adapter(p):
        return str(p), []
    manifest = read_manifest(p)
    base = manifest.get("base_model")
    if not base:
        cfg = json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))
        base = cfg.get("base_model_name_or_path") or fallback_base
    if not base:
        raise EvsysError(f"adapter '{path}' does not say which base model it belongs to")
    return str(base), [*manifest.get("merged_adapters", []), str(p)]


def quantization_config(bits: str, dtype: Any) -> Any:
    """bitsandbytes' config for ``4bit`` (NF4, double quantization: QLoRA's recipe) or ``8bit``."""
    from transformers import BitsAndBytesConfig

    if bits == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype
    )


def load_causal_lm(
    path_or_id: str, *, dtype: Any, device: str, trust_remote_code: bool = False, bits: str = "none"
) -> Any:
    from transformers import AutoModelForCausalLM

    quantized: dict[str, Any] = {}
    if bits != "none":  # bitsandbytes places the weights itself: they cannot be moved afterwards
        quantized = {"quantization_config": quantization_config(bits, dtype), "device_map": {"": device}}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            path_or_id, dtype=dtype, trust_remote_code=trust_remote_code, **quantized
        )
    except OSError as exc:
        raise EvsysError(
            f"could not load model '{path_or_id}': {exc}. Give a local directory, or a hub id with network "
            "access (unset HF_HUB_OFFLINE); build an offline test model with `evsys local tiny-model PATH`"
        ) from exc
    return model if quantized else model.to(device)


def merge_adapters(model: Any, adapters: list[str]) -> Any:
    """Apply each adapter in turn and merge it into the weights (a plain model comes back)."""
    from peft import PeftModel

    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    return model


def load_weights(
    path: str,
    *,
    dtype: Any,
    device: str,
    fallback_base: str | None = None,
    trust_remote_code: bool = False,
    bits: str = "none",
) -> tuple[Any, str, list[str]]:
    """Load a checkpoint's weights as a plain (merged) model; also return its lineage. Quantized
    (``bits``) only full weights load: merging adapters into quantized weights would change them."""
    base, adapters = lineage(path, fallback_base)
    if bits != "none" and adapters:
        raise EvsysError(
            f"'{path}' holds LoRA adapters: they cannot be merged into {bits} weights exactly; start a quantized "
            "run from the base model or a full-weights checkpoint"
        )
    model = load_causal_lm(base, dtype=dtype, device=device, trust_remote_code=trust_remote_code, bits=bits)
    return merge_adapters(model, adapters), base, adapters
