"""Import guard and device/dtype selection shared by every torch-backed class.

Heavy imports happen inside functions: registering or validating never loads torch.
"""

from __future__ import annotations

import os
from typing import Any

from evsys_sdk.base.errors import EvsysError


def install_command() -> str:
    from evsys_sdk.base.install_hints import pip_install

    return pip_install("evsys-local", '"torch==2.13.0"') + " (pin torch in the same command on CPU machines)"


def require_stack(*, load: bool = True) -> None:
    """Import torch/transformers/trl/peft (``load=False``: only find them), turning a missing one into a
    user-facing error."""
    import importlib.util

    # The HF stack must never try the network unless the user opted in by unsetting this.
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    missing = []
    for module in ("torch", "transformers", "trl", "peft", "datasets", "accelerate", "psutil"):
        if not load:
            if importlib.util.find_spec(module) is None:
                missing.append(module)
            continue
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise EvsysError(f"backend 'local' needs {', '.join(missing)}, which is not installed: {install_command()}")


def resolve_device(device: str) -> str:
    """``auto`` picks cuda, then mps, then cpu; an explicit device must exist."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EvsysError(f"device '{device}' was asked for but CUDA is not available; use device: auto or cpu")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto``: bfloat16 on CUDA, float32 elsewhere (CPU bf16 matmuls are slow or unsupported)."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    value = getattr(torch, dtype, None)
    if not isinstance(value, torch.dtype):
        raise EvsysError(f"unknown dtype '{dtype}'; use auto, float32, bfloat16 or float16")
    return value
