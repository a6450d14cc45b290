"""The proposers ``tpe``, ``cmaes`` and ``gp``: Optuna's samplers driven through ask/tell.

evsys's records stay the one source of truth: every told candidate becomes a finished trial (its mean
as the value, a failed candidate as a failed trial) and each ask builds a fresh in-memory study from
those trials, with a sampler seeded from ``self.rng`` (reseeded by the search before every ask). So a
resumed search, which tells the scored candidates again in order, rebuilds the same study and proposes
the same candidates, with no second database. The ``n`` candidates of one ask are drawn one after the
other, the earlier ones left running: with ``constant_liar`` Optuna counts them as bad results, so a
generation of ``search.parallel`` spreads out instead of proposing one point ``n`` times.

CMA-ES keeps its state (the generation, the evolved optimizer) in the trials' system attributes, which
a trial made from a record lacks: ``cmaes`` re-tells each told candidate in order through ask/tell of
a replay study of its own (the candidate's values enqueued, the sampler counting the trial in its
generation and updating at every full one), so its trials carry the state that the original asks had
built, in the uninterrupted search and in a resumed one alike. ``gp`` (Optuna's Gaussian process)
needs torch and scipy, the ``gp`` extra; ``cmaes`` the ``cmaes`` package, the ``cmaes`` extra: a
search naming one without them stops before any arm with the install command.

This module defines registered classes and imports no optuna at module level.
"""

from __future__ import annotations

import importlib.util
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from evsys_sdk import EvsysError
from evsys_sdk.search.proposers import Proposal, Proposer

if TYPE_CHECKING:
    import optuna

    from evsys_optuna.space import Translation
    from evsys_sdk.search.engine import Candidate


class OptunaProposer(Proposer):
    """Ask/tell over a study rebuilt from the told candidates; subclasses name the sampler and the
    modules it needs beyond optuna (``requires``: module -> the extra that installs it)."""

    requires: ClassVar[dict[str, str]] = {}

    class Config(Proposer.Config):
        include_base: bool = Field(default=True, description="propose the base run's own values first")
        n_startup_trials: int = Field(
            default=10, ge=1, le=1000, description="random trials before the model proposes (the base run counts)"
        )

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        missing = sorted({extra for module, extra in self.requires.items() if importlib.util.find_spec(module) is None})
        if missing:
            from evsys_sdk.base.install_hints import pip_install

            pins = ["torch==2.13.0"] if "torch" in self.requires else []  # the CPU wheel, not a CUDA build
            install = pip_install(f"evsys-optuna[{','.join(missing)}]", *pins)
            raise EvsysError(f"proposer '{self.name}' needs {' and '.join(self.requires)}, not installed: {install}")
        self._trials: list[optuna.trial.FrozenTrial] = []
        self._running: list[Candidate] = []
        self._translation: Translation | None = None

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def trial(self, params: dict[str, Any], dists: dict[str, Any], value: float | None) -> optuna.trial.FrozenTrial:
        """A told candidate as a finished trial (``value`` None: a failed one)."""
        from optuna.trial import TrialState, create_trial

        state = TrialState.COMPLETE if value is not None else TrialState.FAIL
        return create_trial(params=params, distributions=dists, value=value, state=state)

    @property
    def translation(self) -> Translation:
        from evsys_optuna.space import Translation

        assert self.space is not None
        if self._translation is None:
            self._translation = Translation(self.space)
        return self._translation

    def running(self, candidates: list[Candidate]) -> None:
        self._running = list(candidates)

    def tell(self, candidate: Candidate) -> None:
        params, dists = self.translation.params(candidate.patch)
        scored = candidate.status == "scored" and candidate.mean is not None
        self._trials.append(self.trial(params, dists, candidate.mean if scored else None))

    def study(self) -> optuna.Study:
        import optuna
        from optuna.trial import TrialState, create_trial

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            direction="maximize" if self.maximize else "minimize",
            sampler=self.sampler(self.rng.randrange(2**31)),
        )
        study.add_trials(self._trials)
        # The jobs in flight as running trials: the constant liar counts them while drawing the next.
        running = [self.translation.params(c.patch) for c in self._running]
        study.add_trials([create_trial(params=p, distributions=d, state=TrialState.RUNNING) for p, d in running])
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


class CmaEsProposer(OptunaProposer):
    """Optuna's CMA-ES (``CmaEsSampler``) over the numeric axes; a choice is drawn at random.

    Its state is rebuilt by re-telling: every told candidate is enqueued into a replay study, asked,
    counted by the sampler in its current generation (which the sampler closes, updating the
    optimizer, once a population is full) and told its value. Each ask then copies those trials, with
    the state in their system attributes, into a fresh study with a sampler seeded for the ask."""

    name: ClassVar[str] = "cmaes"
    requires: ClassVar[dict[str, str]] = {"cmaes": "cmaes"}

    class Config(OptunaProposer.Config):
        n_startup_trials: int = Field(
            default=1, ge=1, le=1000, description="random trials before CMA-ES proposes (the base run counts)"
        )
        sigma0: float | None = Field(
            default=None, gt=0, le=1, description="initial step, as a fraction of each range (default: 1/6)"
        )
        popsize: int | None = Field(default=None, ge=4, le=1000, description="population (default: 4 + 3 ln d)")
        use_separable_cma: bool = Field(default=False, description="a diagonal covariance (many axes, few trials)")

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._replay: optuna.Study | None = None

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        c = self.config
        # Not offered: with_margin, whose optimizer is told the point it sampled itself (``x_for_tell``), which
        # a re-told candidate does not have.
        with warnings.catch_warnings():  # use_separable_cma is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.CmaEsSampler(
                seed=seed,
                n_startup_trials=c.n_startup_trials,
                sigma0=c.sigma0,  # CMA-ES works in [0, 1] per axis: the fraction is the step
                popsize=c.popsize,
                use_separable_cma=c.use_separable_cma,
                warn_independent_sampling=False,  # a choice axis is drawn at random by design
            )

    def trial(self, params: dict[str, Any], dists: dict[str, Any], value: float | None) -> optuna.trial.FrozenTrial:
        import optuna
        from optuna.trial import TrialState

        if self._replay is None:  # what it samples is discarded: only the state it builds matters
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            direction = "maximize" if self.maximize else "minimize"
            self._replay = optuna.create_study(direction=direction, sampler=self.sampler(0))
        study = self._replay
        study.enqueue_trial(params)
        trial = study.ask(dists)
        _ = trial.relative_params  # the sampler counts the trial in its generation (and closes a full one)
        study.tell(trial, value, state=TrialState.COMPLETE if value is not None else TrialState.FAIL)
        return study.get_trials(deepcopy=False)[-1]


class GPProposer(OptunaProposer):
    """Optuna's Gaussian-process Bayesian optimisation (``GPSampler``): log-EI over a Matern kernel fit
    to the told candidates, the candidates in flight counted while proposing the next."""

    name: ClassVar[str] = "gp"
    requires: ClassVar[dict[str, str]] = {"torch": "gp", "scipy": "gp"}

    class Config(OptunaProposer.Config):
        deterministic_objective: bool = Field(
            default=False, description="the score has no seed noise (the kernel then fits no noise term)"
        )

    config: Config

    def sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        import optuna

        with warnings.catch_warnings():  # deterministic_objective is marked experimental
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.GPSampler(
                seed=seed,
                n_startup_trials=self.config.n_startup_trials,
                deterministic_objective=self.config.deterministic_objective,
                warn_independent_sampling=False,
            )
