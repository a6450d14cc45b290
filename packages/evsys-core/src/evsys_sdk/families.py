"""Algorithm families: one YAML trains on mock, local or tinker by changing ``backend.kind`` only.

``kind: sft`` resolves by backend (mock -> mock_sft, local -> local_sft, tinker -> tinker_sft) through
the ``evsys_resolve_algorithm`` hook. Each family's shared params live here, and every implementation's
``Config`` subclasses them, so a config valid on one backend stays valid on the others.
"""

from __future__ import annotations

from pydantic import Field

from evsys_sdk.config import StrictModel


class TrainingParams(StrictModel):
    """Params every training family shares."""

    learning_rate: float = Field(default=1e-4, gt=0)
    num_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=4, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    lora_rank: int = Field(default=8, ge=0)
    seed: int = 42
    save_every: int = Field(default=0, ge=0)
    save_at_fractions: list[float] = Field(default_factory=lambda: [1.0])


class SFTParams(TrainingParams):
    max_seq_len: int = Field(default=2048, ge=1)


class SDFTParams(TrainingParams):
    topk: int = Field(default=20, ge=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, ge=0)


class RLParams(TrainingParams):
    learning_rate: float = Field(default=1e-5, gt=0)
    num_samples: int = Field(default=4, ge=1, description="group size: samples per task")
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, ge=0)


FAMILIES: dict[str, type[TrainingParams]] = {"sft": SFTParams, "sdft": SDFTParams, "rl": RLParams}


def total_steps(params: TrainingParams, n_rows: int) -> int:
    """``max_steps`` when set, else ``max(1, n_rows // batch_size) * num_epochs``."""
    if params.max_steps is not None:
        return params.max_steps
    return max(1, n_rows // params.batch_size) * params.num_epochs


def save_steps(fractions: list[float], total: int) -> list[int]:
    """Checkpoint steps for ``save_at_fractions`` (Python rounding, at least step 1)."""
    return sorted({max(1, round(f * total)) for f in fractions})
