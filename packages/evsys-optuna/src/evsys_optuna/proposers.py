"""The proposer ``tpe``: Optuna's TPE sampler driven through ask/tell.

evsys's records stay the one source of truth: every told candidate becomes a finished trial (its mean
as the value, a failed candidate as a failed trial) and each ask builds a fresh in-memory study from
those trials, with a sampler seeded from ``self.rng`` (reseeded by the search before every ask). So a
resumed search, which tells the scored candidates again in order, rebuilds the same study and proposes
the same candidates, with no second database. The ``n`` candidates of one ask are drawn one after the
other, the earlier ones left running: with ``constant_liar`` Optuna counts them as bad results, so a
generation of ``search.parallel`` spreads out instead of proposing one point ``n`` times.

``cmaes`` is not offered: CMA-ES keeps its state in the trials' system attributes, which a study
rebuilt from evsys's records does not have, so it would restart on every ask. Another stateless
sampler is a subclass that returns it from ``sampler(seed)``.

This module defines registered classes and imports no optuna at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from evsys_sdk.search.proposers import Proposal, Proposer

if TYPE_CHECKING:
    import optuna

    from evsys_optuna.space import Translation
    from evsys_sdk.search.engine import Candidate


class OptunaProposer(Proposer):
    """Ask/tell over a study rebuilt from the told candidates; subclasses name the sampler."""

    class Config(Proposer.Config):
        include_base: bool = Field(default=True, description="propose the base run's own values first")
        n_startup_trials: int = Field(
            default=10, ge=1, le=1000, description="random trials before the model proposes (the base run counts)"
        )

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._trials: list[optuna.trial.FrozenTrial] = []
        self._translation: Translation | None = None

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    @property
    def translation(self) -> Translation:
        from evsys_optuna.space import Translation

        assert self.space is not None
        if self._translation is None:
            self._translation = Translation(self.space)
        return self._translation

    def tell(self, candidate: Candidate) -> None:
        from optuna.trial import TrialState, create_trial

        params, dists = self.translation.params(candidate.patch)
        scored = candidate.status == "scored" and candidate.mean is not None
        self._trials.append(
            create_trial(
                params=params,
                distributions=dists,
                value=candidate.mean if scored else None,
                state=TrialState.COMPLETE if scored else TrialState.FAIL,
            )
        )

    def study(self) -> optuna.Study:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize" if self.maximize else "minimize",
            sampler=self.sampler(self.rng.randrange(2**31)),
        )
        study.add_trials(self._trials)
        return study

    def ask(self, history: list[Candidate], n: int) -> list[Proposal]:
        assert self.space is not None
        out: list[Proposal] = []
        if self.config.include_base and not history and not self._trials and n:
            out.append(Proposal(dict(self.space.base_patch), operator="base"))
        if len(out) < n:
            study = self.study()
            while len(out) < n:  # each trial stays running: the constant liar sees it while drawing the next
                out.append(Proposal(self.translation.suggest(study.ask()), operator=self.name))
        return out


class TPEProposer(OptunaProposer):
    """Optuna's tree-structured Parzen estimator (``TPESampler``)."""

    name: ClassVar[str] = "tpe"

    class Config(OptunaProposer.Config):
        multivariate: bool = Field(default=True, description="model the axes jointly (grouped under a kind switch)")
        constant_liar: bool = Field(
            default=True, description="count the candidates in flight as bad results while proposing the next"
        )
        n_ei_candidates: int = Field(default=24, ge=1, le=10000, description="samples scored per proposal")

    config: Config

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import warnings

        import optuna

        c = self.config
        with warnings.catch_warnings():  # multivariate and group are marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.TPESampler(
                seed=seed,
                n_startup_trials=c.n_startup_trials,
                n_ei_candidates=c.n_ei_candidates,
                multivariate=c.multivariate,
                group=c.multivariate,
                constant_liar=c.constant_liar,
            )
