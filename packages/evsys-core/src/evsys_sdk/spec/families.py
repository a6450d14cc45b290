"""Algorithm families: one YAML trains on mock, local or tinker by changing ``backend.kind`` only.

``kind: sft`` resolves by backend (mock -> mock_sft, local -> local_sft, tinker -> tinker_sft) through
the ``evsys_resolve_algorithm`` hook. Each family's shared params live here, and every implementation's
``Config`` subclasses them, so a config valid on one backend stays valid on the others.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from evsys_sdk.base.errors import EvsysError
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.params import FIXED, learning_rate_field, search, temperature_field

Fraction = Annotated[float, Field(ge=0, le=1)]


class TrainingParams(StrictModel):
    """Params every training family shares."""

    learning_rate: float = learning_rate_field(1e-4)
    num_epochs: int = Field(
        default=1, ge=1, description="passes over the training rows", json_schema_extra=search(int_uniform=(1, 10))
    )
    batch_size: int = Field(
        default=4,
        ge=1,
        description="rows per optimizer step",
        json_schema_extra=search(choice=[1, 2, 4, 8, 16, 32, 64]),
    )
    max_steps: int | None = Field(
        default=None, ge=1, description="optimizer steps to train for, overriding num_epochs (default: from epochs)"
    )
    lora_rank: int = Field(
        default=8,
        ge=0,
        le=4096,
        description="rank of the LoRA adapters (0 = full fine-tuning where the backend offers it)",
        json_schema_extra=search(choice=[4, 8, 16, 32, 64, 128, 256]),
    )
    seed: int = Field(
        default=42, description="random seed (default: the run's seed, so replicates differ)", json_schema_extra=FIXED
    )
    save_every: int = Field(
        default=0, ge=0, description="also checkpoint every N steps (0 = never)", json_schema_extra=FIXED
    )
    save_at_fractions: list[Fraction] = Field(
        default_factory=lambda: [1.0],
        description="checkpoint at these fractions of training, each in [0, 1] (1.0 = the final step)",
        json_schema_extra=FIXED,
    )


class SFTParams(TrainingParams):
    max_seq_len: int = Field(
        default=2048,
        ge=1,
        le=1_048_576,
        description="tokens per example kept (longer ones are truncated)",
        json_schema_extra=FIXED,
    )


class SDFTParams(TrainingParams):
    topk: int = Field(
        default=20,
        ge=1,
        description="teacher logits kept per token for the distillation loss",
        json_schema_extra=search(int_uniform=(1, 100)),
    )
    max_tokens: int = Field(
        default=256,
        ge=1,
        le=32_768,
        description="tokens sampled per completion",
        json_schema_extra=search(choice=[64, 128, 256, 512, 1024]),
    )
    temperature: float = temperature_field(1.0)


class RLParams(TrainingParams):
    learning_rate: float = learning_rate_field(1e-5)
    num_samples: int = Field(
        default=4, ge=1, description="group size: samples per task", json_schema_extra=search(choice=[2, 4, 8, 16])
    )
    max_tokens: int = Field(
        default=256,
        ge=1,
        le=32_768,
        description="tokens sampled per completion",
        json_schema_extra=search(choice=[64, 128, 256, 512, 1024]),
    )
    temperature: float = temperature_field(1.0)


# TRL 1.16's DPO losses (DPOConfig.loss_type); a list of them is combined with ``loss_weights``.
DPOLoss = Literal[
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
]


class DPOParams(TrainingParams):
    """Direct preference optimisation on ``PreferenceRow`` pairs (prompt, chosen, rejected)."""

    learning_rate: float = learning_rate_field(1e-5)
    beta: float = Field(
        default=0.1,
        gt=0,
        le=10.0,
        description="how strongly the policy is held to the reference: higher stays closer (TRL default 0.1)",
    )
    loss_type: DPOLoss | list[DPOLoss] = Field(
        default="sigmoid",
        description="TRL's DPO loss name (sigmoid = the DPO paper), or a list of them summed with loss_weights",
    )
    loss_weights: list[Annotated[float, Field(ge=0)]] | None = Field(
        default=None, description="one weight >= 0 per loss_type entry (default: 1 each); only with a list"
    )
    label_smoothing: float = Field(
        default=0.0, ge=0, lt=0.5, description="assumed share of flipped preference labels (robust / cDPO losses)"
    )
    reference: str = Field(
        default="base",
        min_length=1,
        description="the frozen reference: `base` = the weights training starts from, or a checkpoint to load",
    )
    max_seq_len: int = Field(
        default=1024, ge=8, le=1_048_576, description="prompt + completion tokens kept", json_schema_extra=FIXED
    )

    @model_validator(mode="after")
    def _weights_match_losses(self) -> DPOParams:
        if self.loss_weights is None:
            return self
        n = len(self.loss_type) if isinstance(self.loss_type, list) else 1
        if len(self.loss_weights) != n or any(w < 0 for w in self.loss_weights):
            raise ValueError(f"loss_weights needs {n} weight(s) >= 0, one per loss_type entry")
        return self

    def losses(self) -> list[tuple[str, float]]:
        """``(loss name, weight)`` pairs, the single-loss form included."""
        names = self.loss_type if isinstance(self.loss_type, list) else [self.loss_type]
        weights = self.loss_weights or [1.0] * len(names)
        return list(zip(names, weights, strict=True))


# ``teacher: previous`` distills from the previous combo phase's final checkpoint (sft teacher -> distill).
PREVIOUS = "previous"


class DistillParams(TrainingParams):
    """On-policy distillation: the student samples, the teacher scores every token (GKD / Tinker cookbook)."""

    teacher: str = Field(
        min_length=1,
        description="the teacher: a model or checkpoint the backend can load, or `previous` (the previous combo "
        "phase's final checkpoint)",
    )
    student: str | None = Field(
        default=None,
        min_length=1,
        description="the model the student starts from (default: the run's model, or the chain's checkpoint)",
    )
    beta: float = Field(
        default=1.0, ge=0, le=1, description="generalised JSD mix: 0 = forward KL(teacher||student), 1 = reverse KL"
    )
    temperature: float = Field(default=1.0, gt=0, le=10.0, description="sampling and softmax temperature")
    max_completion_tokens: int = Field(default=128, ge=1, le=32_768, description="tokens the student samples")
    lmbda: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="on-policy fraction: the share of batches the student samples (the rest use the rows' answers)",
    )


FAMILIES: dict[str, type[TrainingParams]] = {
    "sft": SFTParams,
    "sdft": SDFTParams,
    "rl": RLParams,
    "dpo": DPOParams,
    "distill": DistillParams,
}


def distill_endpoints(teacher: str, init_checkpoint: str | None) -> tuple[str, str | None]:
    """``(teacher, checkpoint the student starts from)``: ``teacher: previous`` takes the chain's checkpoint
    as the teacher, and the student then starts from its own model rather than from that checkpoint."""
    if teacher != PREVIOUS:
        return teacher, init_checkpoint
    if not init_checkpoint:
        raise EvsysError(
            "distill: teacher 'previous' needs a previous phase: use it in a combo after a training phase, "
            "or name the teacher model or checkpoint"
        )
    return init_checkpoint, None


def total_steps(params: TrainingParams, n_rows: int) -> int:
    """``max_steps`` when set, else ``max(1, n_rows // batch_size) * num_epochs``."""
    if params.max_steps is not None:
        return params.max_steps
    return max(1, n_rows // params.batch_size) * params.num_epochs


def save_steps(fractions: list[float], total: int) -> list[int]:
    """Checkpoint steps for ``save_at_fractions`` (Python rounding, at least step 1)."""
    return sorted({max(1, round(f * total)) for f in fractions})
