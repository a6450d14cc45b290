"""The mock stack: a backend, training algorithms and an inference client that need no model.

Whole experiments (training, checkpoints, continual chains, benchmarks) run on it in milliseconds,
which is what tests and CI use. How much a run learns follows ``evsys_sdk.builtins.mock_landscape``:
a smooth function of learning rate, LoRA rank and epochs with a real optimum and seed noise of a
documented size, so sweeps on mock answer their questions. Same config and seed, same numbers.
"""

from __future__ import annotations

import functools
import json
import math
import random
import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from evsys_sdk.base.io import atomic_write_json
from evsys_sdk.builtins.mock_landscape import LOSS_FLOOR, LOSS_START, landscape
from evsys_sdk.spec.config import RunConfig, StrictModel
from evsys_sdk.spec.data_types import row_answer, row_prompt
from evsys_sdk.spec.families import (
    DistillParams,
    DPOParams,
    RLParams,
    SDFTParams,
    SFTParams,
    TrainingParams,
    distill_endpoints,
    save_steps,
    total_steps,
)
from evsys_sdk.spec.params import FIXED, learning_rate_field, search
from evsys_sdk.spec.protocols import InferenceClient, RunContext, RunResult

MOCK_TEMPLATE = "<think>mock thinking</think>\n<answer>MOCK_ANSWER</answer>"


class MockBackend:
    name: ClassVar[str] = "mock"

    class Config(StrictModel):
        fail_on_prepare: bool = Field(
            default=False, description="raise in prepare (to test failure handling)", json_schema_extra=FIXED
        )

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def prepare(self, *, model: dict[str, Any], run_dir: str) -> dict[str, Any]:
        if self.config.fail_on_prepare:
            raise RuntimeError("MockBackend asked to fail")
        return {"backend": "mock", "model": dict(model), "run_dir": run_dir, "model_name": model.get("name")}

    def teardown(self, handles: dict[str, Any]) -> None:
        return None


def _write_checkpoint(ctx: RunContext, dirname: str, payload: dict[str, Any]) -> str:
    path = Path(ctx.output_dir) / dirname
    atomic_write_json(path / "metadata.json", payload)
    return str(path)


def _init_from(ctx: RunContext) -> str | None:
    """The checkpoint this run starts from: a continual/combo chain's previous stage, if any."""
    handles = ctx.extras.get("backend_handles") or {}
    model = handles.get("model") if isinstance(handles, dict) else None
    init = model.get("init_from_checkpoint") if isinstance(model, dict) else None
    return ctx.extras.get("init_checkpoint") or init


class MockMemory:
    """Rows learned by a mock run: ``learned`` maps a prompt to its answer and the training progress
    (0..1, above 1 = never) at which it is recalled; ``kept`` survives from an earlier stage."""

    def __init__(self, kept: dict[str, str], learned: dict[str, tuple[str, float]]):
        self.kept, self.learned = kept, learned

    def at(self, progress: float) -> dict[str, str]:
        return {**self.kept, **{p: a for p, (a, when) in self.learned.items() if when <= progress}}

    def client(self, progress: float) -> MockInference:
        """The live model at ``progress``: what in-loop validation scores."""
        return MockInference(memory=self.at(progress))


class _MockTrainer:
    """Shared loop: log one metric dict per step, checkpoint at the save steps, write final + state."""

    name: ClassVar[str]
    Config: ClassVar[type[TrainingParams]]
    config: TrainingParams

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def _steps(self, ctx: RunContext) -> int:
        return total_steps(self.config, int(ctx.extras.get("n_train_rows", 100)))

    @functools.cached_property
    def skill(self) -> float:
        """What this run learns (0..1): the mock landscape at its params and seed."""
        return landscape(self.config.model_dump(), self.config.seed)

    def _step_metrics(self, step: int, total: int) -> dict[str, float]:
        raise NotImplementedError

    def _final_metrics(self, last: dict[str, float], total: int) -> dict[str, float]:
        raise NotImplementedError

    def _is_checkpoint(self, step: int, marks: set[int]) -> bool:
        """A ``save_at_fractions`` step (``marks``) or a multiple of ``save_every``, tested per step: a set
        of every multiple would not fit in memory for a huge (schema-valid) ``num_epochs``."""
        every = self.config.save_every
        return step in marks or bool(every and step % every == 0)

    def _start(self, ctx: RunContext) -> str | None:
        """The checkpoint the model starts from."""
        return _init_from(ctx)

    def _lessons(self, ctx: RunContext) -> list[tuple[str, str | None]]:
        """``(prompt, answer)`` per training row: what the mock model may learn."""
        return [(row_prompt(row), row_answer(row)) for row in ctx.extras.get("train_rows") or []]

    def _memory(self, ctx: RunContext, init_from: str | None) -> MockMemory:
        """What the mock model "learns": each training row is recalled from a training progress drawn per
        seed and prompt, scaled so that a share ``skill`` of the rows is recalled at the end (the same rows
        for every config of one seed: comparisons see the landscape, not row luck); a chain's earlier
        memories are half forgotten."""
        seed, chance = self.config.seed, max(self.skill, 1e-9)
        learned: dict[str, tuple[str, float]] = {}
        for prompt, answer in self._lessons(ctx):
            if prompt and answer is not None:
                learned[prompt] = (answer, random.Random(f"{seed}:{prompt}").random() / chance)
        earlier = read_checkpoint(init_from).get("memory", {}) if init_from and Path(init_from).is_dir() else {}
        kept = {p: a for p, a in earlier.items() if random.Random(f"{seed}:forget:{p}").random() < 0.5}
        return MockMemory(kept, learned)

    def train(self, ctx: RunContext) -> RunResult:
        ctx.log_store.log_hyperparams({"algorithm": self.name, **self.config.model_dump()})
        total = self._steps(ctx)
        marks = set(save_steps(self.config.save_at_fractions, total))
        init_from = self._start(ctx)
        memory = self._memory(ctx, init_from)
        artifacts: dict[str, str] = {}
        last: dict[str, float] = {}
        pause = getattr(self.config, "step_seconds", 0.0)
        for step in range(1, total + 1):
            ctx.check_budget()
            if pause:  # never past the budget: the next check stops the run
                time.sleep(pause if ctx.budget is None else max(0.0, min(pause, ctx.budget.left())))
            last = self._step_metrics(step, total)
            ctx.log_store.log_metrics(last, step)
            if self._is_checkpoint(step, marks):
                path = _write_checkpoint(ctx, f"checkpoint-{step}", {"step": step, **last, "algorithm": self.name})
                artifacts[f"ckpt_step_{step}"] = path
                ctx.log_store.log_artifact(f"ckpt_step_{step}", path, kind="checkpoint")
            ctx.validate(step, functools.partial(memory.client, step / total))
        meta = {"final": True, "step": total, "algorithm": self.name, "init_from": init_from, "memory": memory.at(1.0)}
        artifacts["final_checkpoint"] = _write_checkpoint(ctx, "final", meta)
        artifacts["state-final"] = _write_checkpoint(ctx, "state-final", {**meta, "optimizer": "mock"})
        ctx.log_store.log_artifact("final_checkpoint", artifacts["final_checkpoint"], kind="checkpoint")
        return RunResult(ctx.run_id, "completed", metrics=self._final_metrics(last, total), artifacts=artifacts)


def _step_seconds() -> Any:
    return Field(
        default=0.0, ge=0, le=60, description="wall time per step: a stand-in for real work", json_schema_extra=FIXED
    )


class MockSFTConfig(SFTParams):
    step_seconds: float = _step_seconds()


class MockSDFTConfig(SDFTParams):
    step_seconds: float = _step_seconds()


class MockSFT(_MockTrainer):
    """``sft`` on backend mock: loss = 0.05 + 1.95·(1 − skill)^(step/total), skill from the landscape."""

    name: ClassVar[str] = "mock_sft"
    Config: ClassVar[type[TrainingParams]] = MockSFTConfig

    def _step_metrics(self, step: int, total: int) -> dict[str, float]:
        return {"train/loss": LOSS_FLOOR + (LOSS_START - LOSS_FLOOR) * (1.0 - self.skill) ** (step / total)}

    def _final_metrics(self, last: dict[str, float], total: int) -> dict[str, float]:
        return {"train/final_loss": last["train/loss"], "total_steps": float(total)}


class MockSDFT(MockSFT):
    """``sdft`` on backend mock: the SFT loss curve under the sdft family's params."""

    name: ClassVar[str] = "mock_sdft"
    Config: ClassVar[type[TrainingParams]] = MockSDFTConfig


class MockRLConfig(RLParams):
    step_seconds: float = _step_seconds()
    num_steps: int = Field(
        default=100,
        ge=0,
        description="optimizer steps (max_steps overrides)",
        json_schema_extra=search(int_uniform=(10, 1000)),
    )
    num_generations: int = Field(default=4, ge=1, description="completions sampled per prompt")
    kl_penalty_coef: float = Field(
        default=0.0,
        ge=0,
        description="weight of the KL penalty to the reference policy",
        json_schema_extra=search(uniform=(0.0, 0.5)),
    )
    verifier_kind: str = Field(
        default="format_only",
        min_length=1,
        description="the registered verifier scoring rewards",
        json_schema_extra=FIXED,
    )
    verifier_params: dict[str, Any] = Field(
        default_factory=dict, description="that verifier's params", json_schema_extra=FIXED
    )
    save_every: int = Field(
        default=50, ge=0, description="checkpoint every N steps (0 = only the last)", json_schema_extra=FIXED
    )
    lora_rank: int = Field(
        default=4,
        ge=0,
        le=4096,
        description="rank of the LoRA adapters",
        json_schema_extra=search(choice=[4, 8, 16, 32, 64, 128, 256]),
    )
    learning_rate: float = learning_rate_field(5e-5)


class MockRL(_MockTrainer):
    """``rl`` on backend mock: reward rises from 0.1 to 0.1 + 0.8·skill as 1 − exp(−4·step/steps) (scaled to
    reach it at the last step), skill from the landscape; probed with its verifier."""

    name: ClassVar[str] = "mock_rl"
    Config: ClassVar[type[TrainingParams]] = MockRLConfig
    config: MockRLConfig

    def _steps(self, ctx: RunContext) -> int:
        return self.config.max_steps if self.config.max_steps is not None else self.config.num_steps

    def _is_checkpoint(self, step: int, marks: set[int]) -> bool:
        return step % max(1, self.config.save_every) == 0

    def _step_metrics(self, step: int, total: int) -> dict[str, float]:
        reward = 0.1 + 0.8 * self.skill * (1.0 - math.exp(-4.0 * step / total)) / (1.0 - math.exp(-4.0))
        return {"train/reward": reward, "reward/mean": reward, "train/kl": 0.0}

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_sdk.plugins.registry import get_verifier

        self.verifier = get_verifier(self.config.verifier_kind)(**self.config.verifier_params)
        return super().train(ctx)

    def _final_metrics(self, last: dict[str, float], total: int) -> dict[str, float]:
        probe = self.verifier.verify(prompt="", completion="<think>t</think>\n<answer>X</answer>", target={})
        return {"train/final_reward": last.get("train/reward", 0.1), "verifier/probe_reward": float(probe.reward)}


def _closeness(value: float, best: float) -> float:
    """1 at ``best``, falling off with the distance in decades: the mock's response to a knob."""
    return math.exp(-0.5 * math.log10(value / best) ** 2)


def _text(turns: Any) -> str:
    """A preference field as text: the string itself, or the last turn's content of a message list."""
    return str(turns[-1].get("content", "")) if isinstance(turns, list) else str(turns)


class MockDPOConfig(DPOParams):
    step_seconds: float = _step_seconds()


class MockDPO(_MockTrainer):
    """``dpo`` on backend mock: the landscape's skill, scaled by how close ``beta`` is to 0.1 (0.61x a
    decade off), sets the implicit reward margin the run reaches (4·skill); the margin grows as
    1 − exp(−4·step/total), the loss is the DPO sigmoid loss of it and preference accuracy rises from 0.5."""

    name: ClassVar[str] = "mock_dpo"
    Config: ClassVar[type[TrainingParams]] = MockDPOConfig
    config: MockDPOConfig

    @functools.cached_property
    def skill(self) -> float:
        return landscape(self.config.model_dump(), self.config.seed) * _closeness(self.config.beta, 0.1)

    def _lessons(self, ctx: RunContext) -> list[tuple[str, str | None]]:
        rows = ctx.extras.get("train_rows") or []
        return [(_text(r.get("prompt", "")), _text(r["chosen"])) for r in rows if "chosen" in r]

    def _step_metrics(self, step: int, total: int) -> dict[str, float]:
        margin = 4.0 * self.skill * (1.0 - math.exp(-4.0 * step / total))
        moved = margin / self.config.beta  # the summed log-ratio gap behind the implicit reward margin
        return {
            "train/loss": math.log1p(math.exp(-margin)),
            "dpo/reward_margin": margin,
            "dpo/reward_accuracy": 0.5 + 0.5 * math.tanh(margin),
            "dpo/chosen_logp": -20.0 + 0.3 * moved,
            "dpo/rejected_logp": -22.0 - 0.7 * moved,
        }

    def _final_metrics(self, last: dict[str, float], total: int) -> dict[str, float]:
        keys = ("dpo/reward_margin", "dpo/reward_accuracy")
        return {"train/final_loss": last["train/loss"], "total_steps": float(total), **{k: last[k] for k in keys}}


class MockDistillConfig(DistillParams):
    step_seconds: float = _step_seconds()


class MockDistill(_MockTrainer):
    """``distill`` on backend mock: the student learns the teacher's answers to the training prompts (a
    mock teacher checkpoint's memory, else the rows' own answers); the divergence to the teacher falls
    like SFT's loss, by the landscape's skill."""

    name: ClassVar[str] = "mock_distill"
    Config: ClassVar[type[TrainingParams]] = MockDistillConfig
    config: MockDistillConfig

    def _start(self, ctx: RunContext) -> str | None:
        self.teacher, student_init = distill_endpoints(self.config.teacher, _init_from(ctx))
        return student_init

    def _lessons(self, ctx: RunContext) -> list[tuple[str, str | None]]:
        known = read_checkpoint(self.teacher).get("memory", {}) if Path(self.teacher, "metadata.json").is_file() else {}
        lessons = super()._lessons(ctx)
        return [(p, known.get(p, a)) for p, a in lessons]

    def _step_metrics(self, step: int, total: int) -> dict[str, float]:
        kl = LOSS_FLOOR + (LOSS_START - LOSS_FLOOR) * (1.0 - self.skill) ** (step / total)
        return {"train/loss": kl, "distill/teacher_logp": -kl - 0.5}

    def _final_metrics(self, last: dict[str, float], total: int) -> dict[str, float]:
        return {"train/final_loss": last["train/loss"], "total_steps": float(total)}


class MockInference:
    """Formats ``template`` with the prompt and cuts at the first stop string; no model involved."""

    name: ClassVar[str] = "mock"

    class Config(StrictModel):
        template: str = Field(
            default=MOCK_TEMPLATE, description="the completion: a format string over {prompt}", json_schema_extra=FIXED
        )
        memory: dict[str, str] = Field(
            default_factory=dict, description="prompt -> answer the model recalls", json_schema_extra=FIXED
        )

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.calls = 0

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        self.calls += 1
        if prompt in self.config.memory:
            return self.config.memory[prompt]
        try:
            text = self.config.template.format(prompt=prompt)
        except (KeyError, IndexError, ValueError):
            text = self.config.template
        for s in stop or []:
            if s and s in text:
                text = text[: text.index(s)]
        return text


def mock_inference_factory(run_result: RunResult, run_config: RunConfig) -> InferenceClient:
    """Serves a finished mock arm with what it learned; the template may come from ``eval.inference``."""
    spec = run_config.eval.inference
    params = dict(spec.params) if spec is not None and spec.kind == "mock" else {}
    final = run_result.artifacts.get("final_checkpoint")
    if final and Path(final, "metadata.json").is_file():
        params["memory"] = {**read_checkpoint(final).get("memory", {}), **params.get("memory", {})}
    return MockInference(**params)


def read_checkpoint(path: str) -> dict[str, Any]:
    """A mock checkpoint's metadata (used by tests and continual chains)."""
    with open(Path(path) / "metadata.json", encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data
