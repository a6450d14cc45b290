"""The registered Tinker algorithms. This module stays light: the loop and recipes (which import
tinker and numpy) load when ``train`` runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from evsys_tinker.config import (
    TinkerDistillConfig,
    TinkerDPOConfig,
    TinkerRLConfig,
    TinkerSDFTConfig,
    TinkerSFTConfig,
    TinkerTrainingParams,
)

if TYPE_CHECKING:
    from evsys_sdk.spec.protocols import RunContext, RunResult
    from evsys_tinker._loop import Recipe


class _TinkerAlgorithm:
    name: ClassVar[str]
    Config: ClassVar[type[TinkerTrainingParams]]

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)

    def recipe(self, ctx: RunContext) -> Recipe:
        raise NotImplementedError

    def train(self, ctx: RunContext) -> RunResult:
        from evsys_tinker._loop import handles_of, train

        handles_of(ctx, self.name)  # the backend check comes before any row is parsed
        return train(self.name, self.config, self.recipe(ctx), ctx)


class TinkerSFT(_TinkerAlgorithm):
    """Family ``sft`` on backend tinker."""

    name: ClassVar[str] = "tinker_sft"
    Config: ClassVar[type[TinkerTrainingParams]] = TinkerSFTConfig

    def recipe(self, ctx: RunContext) -> Recipe:
        from evsys_tinker._sft import SFTRecipe

        assert isinstance(self.config, TinkerSFTConfig)
        return SFTRecipe(self.config, ctx)


class TinkerSDFT(_TinkerAlgorithm):
    """Family ``sdft`` on backend tinker."""

    name: ClassVar[str] = "tinker_sdft"
    Config: ClassVar[type[TinkerTrainingParams]] = TinkerSDFTConfig

    def recipe(self, ctx: RunContext) -> Recipe:
        from evsys_tinker._sdft import SDFTRecipe

        assert isinstance(self.config, TinkerSDFTConfig)
        return SDFTRecipe(self.config, ctx)


class TinkerRL(_TinkerAlgorithm):
    """Family ``rl`` on backend tinker."""

    name: ClassVar[str] = "tinker_rl"
    Config: ClassVar[type[TinkerTrainingParams]] = TinkerRLConfig

    def recipe(self, ctx: RunContext) -> Recipe:
        from evsys_tinker._rl import RLRecipe

        assert isinstance(self.config, TinkerRLConfig)
        return RLRecipe(self.config, ctx)


class TinkerDPO(_TinkerAlgorithm):
    """Family ``dpo`` on backend tinker."""

    name: ClassVar[str] = "tinker_dpo"
    Config: ClassVar[type[TinkerTrainingParams]] = TinkerDPOConfig

    def recipe(self, ctx: RunContext) -> Recipe:
        from evsys_tinker._dpo import DPORecipe

        assert isinstance(self.config, TinkerDPOConfig)
        return DPORecipe(self.config, ctx)


class TinkerDistill(_TinkerAlgorithm):
    """Family ``distill`` on backend tinker."""

    name: ClassVar[str] = "tinker_distill"
    Config: ClassVar[type[TinkerTrainingParams]] = TinkerDistillConfig

    def recipe(self, ctx: RunContext) -> Recipe:
        from evsys_tinker._distill import DistillRecipe

        assert isinstance(self.config, TinkerDistillConfig)
        return DistillRecipe(self.config, ctx)

    def train(self, ctx: RunContext) -> RunResult:
        """The student starts from ``student`` (a base model) or from the chain, unless the chain's
        checkpoint is the teacher (``teacher: previous``)."""
        import dataclasses

        from evsys_sdk.spec.families import distill_endpoints
        from evsys_tinker._loop import handles_of

        assert isinstance(self.config, TinkerDistillConfig)
        handles = dict(handles_of(ctx, self.name))
        init = ctx.extras.get("init_checkpoint") or handles.get("init_from_checkpoint")
        teacher, student_init = distill_endpoints(self.config.teacher, init)
        if self.config.student is not None:
            handles["model_name"], student_init = self.config.student, None
        handles["init_from_checkpoint"] = student_init
        extras = {**ctx.extras, "backend_handles": handles, "init_checkpoint": student_init, "distill_teacher": teacher}
        return super().train(dataclasses.replace(ctx, extras=extras))
