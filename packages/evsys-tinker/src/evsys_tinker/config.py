"""Params of everything evsys-tinker registers: plain pydantic, so listing, schemas and validation never
import tinker.

Each algorithm's ``Config`` subclasses its family's shared params (``evsys_sdk.spec.families``), so a YAML
valid on backend mock or local stays valid on tinker; the fields added here are tinker-only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from evsys_sdk.spec.config import StrictModel
from evsys_sdk.spec.families import DistillParams, DPOParams, RLParams, SDFTParams, SFTParams
from evsys_sdk.spec.params import FIXED, search

DEFAULT_API_KEY_ENV = "TINKER_API_KEY"

DEFAULT_DEMO_TEMPLATE = (
    "{question}\n\nThis is an example for a response to the question:\n{answer}\n\n"
    "Now answer with a response of your own, including the thinking process."
)


class ConnectionParams(StrictModel):
    """How to reach Tinker: the hosted service, or the offline emulator."""

    api_key_env: str = Field(
        default=DEFAULT_API_KEY_ENV, min_length=1, description="env var holding the API key", json_schema_extra=FIXED
    )
    base_url: str | None = Field(
        default=None, description="service URL (default: TINKER_BASE_URL or the SDK's)", json_schema_extra=FIXED
    )
    emulator: bool = Field(
        default=False,
        description="run against evsys_tinker's offline emulator (tiny numpy model, no key, no network)",
        json_schema_extra=FIXED,
    )
    emulator_dir: str | None = Field(
        default=None,
        description="where the emulator keeps checkpoints (default: $EVSYS_TINKER_EMULATOR_DIR, "
        "else ~/.cache/evsys/tinker-emulator)",
        json_schema_extra=FIXED,
    )


class TinkerBackendConfig(ConnectionParams):
    pass


class TinkerTrainingParams(StrictModel):
    """Params the three Tinker algorithms share beyond their family's (BEHAVIOR 1.13, Tinker base)."""

    lora_rank: int = Field(
        default=8,
        ge=1,
        le=4096,
        description="Tinker trains LoRA adapters: rank >= 1",
        json_schema_extra=search(choice=[4, 8, 16, 32, 64, 128, 256]),
    )
    adam_beta1: float = Field(default=0.9, ge=0, lt=1, description="Adam's first-moment decay")
    adam_beta2: float = Field(default=0.95, ge=0, lt=1, description="Adam's second-moment decay")
    adam_eps: float = Field(
        default=1e-8,
        gt=0,
        le=1,
        description="Adam's denominator epsilon",
        json_schema_extra=search(log_uniform=(1e-10, 1e-6)),
    )
    weight_decay: float = Field(
        default=0.0, ge=0, le=1, description="decoupled weight decay", json_schema_extra=search(uniform=(0.0, 0.1))
    )
    grad_clip_norm: float = Field(default=0.0, ge=0, description="clip the gradient norm to this (0 = no clipping)")
    enable_thinking: bool | None = Field(
        default=None, description="passed to the chat template when set (Qwen3-style templates)"
    )
    ttl_seconds: int | None = Field(default=None, ge=3600, description="checkpoint lifetime on the service")


class TinkerSFTConfig(TinkerTrainingParams, SFTParams):
    supervise: Literal["all_assistant", "last_assistant"] = Field(
        default="all_assistant", description="which assistant turns of a chat row the loss covers"
    )


class TinkerSDFTConfig(TinkerTrainingParams, SDFTParams):
    teacher_sync_every: int | None = Field(
        default=None, ge=1, description="refresh the teacher from the student every N steps (None: frozen base)"
    )
    max_context_length: int = Field(
        default=2048, ge=8, description="tokens of teacher context kept (prompt + demonstration)"
    )
    demo_template: str = Field(
        default=DEFAULT_DEMO_TEMPLATE,
        description="the teacher's prompt: a format string over {question} and {answer}",
        json_schema_extra=FIXED,
    )
    system_prompt: str | None = Field(default=None, description="a system message for student and teacher")
    skip_first_n_tokens: int = Field(
        default=3, ge=0, description="completion tokens left out of the distillation loss at its start"
    )
    user_template: str = Field(
        default="{question}", description="the student's prompt: a format string over the row's fields"
    )


class TinkerRLConfig(TinkerTrainingParams, RLParams):
    verifier_name: str | None = Field(
        default=None, description="in-process verifier fn for tasks whose verifier has an empty fn_name"
    )
    drop_constant_reward: bool = Field(
        default=True, description="skip groups whose samples all got the same reward (no learning signal)"
    )
    system_prompt: str | None = Field(default=None, description="a system message before each task")
    user_template: str = Field(default="{prompt}", description="the prompt: a format string over the task's fields")
    loss_fn: Literal["importance_sampling", "ppo", "cispo"] = Field(
        default="importance_sampling", description="Tinker's policy-gradient loss"
    )


# The DPO losses tinker_dpo computes client-side (pairwise in the log-ratio, plus NLL on the chosen reply).
TINKER_DPO_LOSSES = ("sigmoid", "robust", "hinge", "ipo", "sft")


class TinkerDPOConfig(TinkerTrainingParams, DPOParams):
    @model_validator(mode="after")
    def _supported(self) -> TinkerDPOConfig:
        unsupported = [name for name, _ in self.losses() if name not in TINKER_DPO_LOSSES]
        if unsupported:
            raise ValueError(
                f"tinker_dpo computes the losses {', '.join(TINKER_DPO_LOSSES)}; {', '.join(unsupported)} "
                "run on backend local (TRL's DPOTrainer)"
            )
        if self.reference != "base" and not self.reference.startswith("tinker://"):
            raise ValueError("reference must be `base` or a tinker://.../sampler_weights/... checkpoint")
        return self


class TinkerDistillConfig(TinkerTrainingParams, DistillParams):
    @model_validator(mode="after")
    def _reverse_kl(self) -> TinkerDistillConfig:
        if self.beta != 1.0:
            raise ValueError(
                "tinker_distill trains the reverse KL (beta: 1), the Tinker cookbook's per-token advantage over "
                "sampled tokens; other beta need the teacher's full distribution: use backend local"
            )
        return self


class TinkerInferenceConfig(ConnectionParams):
    model_name: str = Field(
        min_length=1, description="the base model (also names the tokenizer)", json_schema_extra=FIXED
    )
    checkpoint_path: str | None = Field(
        default=None, description="tinker://.../sampler_weights/... to serve", json_schema_extra=FIXED
    )
    system_prompt: str | None = Field(default=None, description="a system message before each prompt")
    chat_template: bool = Field(default=True, description="render the prompt as a user turn of the chat template")
    enable_thinking: bool | None = Field(
        default=None, description="passed to the chat template when set (Qwen3-style templates)"
    )
