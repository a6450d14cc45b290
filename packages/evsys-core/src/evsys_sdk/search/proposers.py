"""Proposers: the registered kind ``proposer`` (hook ``evsys_register_proposers``) and the built-ins.

A proposer answers ``ask(history, n)`` with ``n`` proposals (a patch of dotted path -> value, its
parents and the operator's name) and hears ``tell(candidate)`` once a candidate is scored. The search
asks whenever places are free (at the start ``search.parallel`` candidates, then one as each job ends)
from everything scored before, says which candidates are still ``running`` before each ask, tells in
the order jobs end, and reseeds ``self.rng`` before every ask from the search seed and the number of asks
so far: a proposer that draws only from ``self.rng``, its config and what it was told proposes the same
candidates on every run with the same seed, and a resumed search continues exactly (nothing is asked
again, the told candidates are told again in order).

Built in: ``random`` (uniform over the space) and ``mutate`` (evolutionary: tournament or Pareto
selection among the scored candidates, a mutation per field type from the schema, occasional crossover).
Both propose the base run's own values first.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate
    from evsys_sdk.search.space import Space


@dataclass
class Proposal:
    """A candidate recipe as a patch of the base run (keys: the space's dotted paths)."""

    patch: dict[str, Any]
    parents: list[str] = field(default_factory=list)
    operator: str = "random"


class Proposer:
    """The interface the search drives. Subclasses set ``name`` and a pydantic ``Config``."""

    name: ClassVar[str] = ""

    class Config(StrictModel):
        pass

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.rng = random.Random(0)
        self.space: Space | None = None
        self.maximize = True

    def setup(self, space: Space, *, maximize: bool) -> None:
        """Called once before the first ask: the space and the direction of the objective."""
        self.space, self.maximize = space, maximize

    def ask(self, history: list[Candidate], n: int) -> list[Proposal]:
        raise NotImplementedError

    def running(self, candidates: list[Candidate]) -> None:
        """Before each ask: the candidates whose job is in flight (proposed or promoted, not yet told)."""

    def tell(self, candidate: Candidate) -> None:
        """A candidate was scored (or failed); called in the order jobs end."""

    def reject(self, patch: dict[str, Any], reason: str) -> None:
        """A proposal of the last ask was rejected before it was charged, and why."""

    def usage(self) -> dict[str, Any]:
        """What the proposer itself spent (model calls, tokens), reported in ``spent["proposer"]``."""
        return {}


def _key(patch: dict[str, Any]) -> str:
    return repr(sorted(patch.items()))


class RandomProposer(Proposer):
    """Uniform samples of the space (after the base run's own values, unless ``include_base`` is off)."""

    name: ClassVar[str] = "random"

    class Config(Proposer.Config):
        include_base: bool = Field(default=True, description="propose the base run's own values first")

    config: Config

    def ask(self, history: list[Candidate], n: int) -> list[Proposal]:
        assert self.space is not None
        out = []
        if self.config.include_base and not history and n:
            out.append(Proposal(dict(self.space.base_patch), operator="base"))
        while len(out) < n:
            out.append(Proposal(self.space.sample(self.rng), operator="random"))
        return out


class MutateProposer(Proposer):
    """Evolution over the scored candidates.

    Parents come from a tournament (the best mean of ``tournament_size`` drawn at random from the
    ``elite`` best scored candidates) or from the Pareto front of (mean score, arm seconds) over all of
    them: good and cheap. A child is a parent with each axis
    mutated with probability ``1 / len(space)`` (at least one): a Gaussian step of ``sigma`` of the
    range (in log space for log ranges), a neighbour move for ints and choices. With probability
    ``crossover`` two parents are first mixed axis by axis. The first ``initial`` candidates are random.
    """

    name: ClassVar[str] = "mutate"

    class Config(Proposer.Config):
        selection: Literal["tournament", "pareto"] = Field(
            default="tournament", description="how parents are picked: tournament on the score, or the Pareto front"
        )
        elite: int = Field(default=4, ge=1, description="parents come from this many best scored candidates")
        tournament_size: int = Field(default=2, ge=1, description="elite candidates drawn per tournament")
        sigma: float = Field(default=0.15, gt=0, le=1, description="Gaussian step, as a fraction of the range")
        crossover: float = Field(default=0.2, ge=0, le=1, description="probability of mixing two parents")
        initial: int = Field(default=4, ge=1, description="random candidates (the base run first) before evolving")
        include_base: bool = Field(default=True, description="propose the base run's own values first")

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._told: set[str] = set()  # the patches told so far: a child equal to one teaches nothing

    def tell(self, candidate: Candidate) -> None:
        self._told.add(_key(candidate.patch))

    def ask(self, history: list[Candidate], n: int) -> list[Proposal]:
        assert self.space is not None
        scored = [c for c in history if c.status == "scored" and c.mean is not None]
        if self.config.selection == "tournament":
            scored = sorted(scored, key=lambda c: c.mean or 0.0, reverse=self.maximize)[: self.config.elite]
        seen = set(self._told)
        out: list[Proposal] = []
        while len(out) < n:
            position = len(history) + len(out)
            if position < self.config.initial or not scored:
                if self.config.include_base and position == 0:
                    proposal = Proposal(dict(self.space.base_patch), operator="base")
                else:
                    proposal = Proposal(self.space.sample(self.rng), operator="random")
            else:
                proposal = self._child(scored, seen)
            seen.add(_key(proposal.patch))
            out.append(proposal)
        return out

    def _child(self, scored: list[Candidate], seen: set[str]) -> Proposal:
        assert self.space is not None
        proposal = Proposal({})
        for _ in range(20):  # a child identical to a known candidate teaches nothing: draw again
            first = self._select(scored)
            if len(scored) > 1 and self.rng.random() < self.config.crossover:
                second = self._select([c for c in scored if c.id != first.id])
                patch = {p: (first.patch if self.rng.random() < 0.5 else second.patch)[p] for p in first.patch}
                proposal = Proposal(self._mutate(patch, force=False), [first.id, second.id], "crossover")
            else:
                proposal = Proposal(self._mutate(first.patch, force=True), [first.id], "mutate")
            if _key(proposal.patch) not in seen:
                break
        return proposal

    def _mutate(self, patch: dict[str, Any], *, force: bool) -> dict[str, Any]:
        assert self.space is not None
        axes = self.space.axes
        chosen = [a for a in axes if self.rng.random() < 1 / len(axes)]
        if force and not chosen:
            chosen = [self.rng.choice(axes)]
        out = dict(patch)
        for axis in chosen:
            out[axis.path] = axis.mutate(
                out.get(axis.path, self.space.base_patch[axis.path]), self.rng, self.config.sigma
            )
        return out

    def _better(self, a: Candidate, b: Candidate) -> bool:
        assert a.mean is not None and b.mean is not None
        return a.mean > b.mean if self.maximize else a.mean < b.mean

    def _select(self, pool: list[Candidate]) -> Candidate:
        if self.config.selection == "pareto":
            return self.rng.choice(self._front(pool))
        best = None
        for c in (self.rng.choice(pool) for _ in range(self.config.tournament_size)):
            if best is None or self._better(c, best):
                best = c
        assert best is not None
        return best

    def _front(self, pool: list[Candidate]) -> list[Candidate]:
        """The candidates no other beats on both score and arm seconds."""

        def dominates(a: Candidate, b: Candidate) -> bool:
            no_worse = not self._better(b, a) and a.seconds <= b.seconds
            return no_worse and (self._better(a, b) or a.seconds < b.seconds)

        return [c for c in pool if not any(dominates(o, c) for o in pool if o is not c)]


PROPOSER_CLASSES: tuple[type[Proposer], ...] = (RandomProposer, MutateProposer)
