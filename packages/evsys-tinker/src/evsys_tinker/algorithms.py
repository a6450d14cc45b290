"""The registered Tinker algorithms. This module stays light: the loop and recipes (which import
tinker and numpy) load when ``train`` runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from evsys_tinker.config import TinkerRLConfig, TinkerSDFTConfig, TinkerSFTConfig, TinkerTrainingParams

if TYPE_CHECKING:
    from evsys_sdk.protocols import RunContext, RunResult
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


ALGORITHMS = (TinkerSFT, TinkerSDFT, TinkerRL)
FAMILY = {"sft": "tinker_sft", "sdft": "tinker_sdft", "rl": "tinker_rl"}
