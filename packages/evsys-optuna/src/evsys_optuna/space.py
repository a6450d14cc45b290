"""evsys's search space in Optuna's terms. Imports optuna: loaded only when a proposer asks.

``log_uniform`` is a log float, ``uniform`` a float, ``int_uniform`` an int (both ends included), and a
``choice`` is categorical over the choices' indices (a choice may be any YAML value; Optuna's categorical
takes only scalars). A ``choice`` of ``algorithm.kind`` is drawn first and makes the space conditional:
an ``algorithm.params.*`` axis is drawn only when the drawn kind has that param.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from evsys_sdk.search.space import Axis, Space, params_model

KIND = "algorithm.kind"


def distribution(axis: Axis) -> BaseDistribution:
    if axis.kind == "choice":
        return CategoricalDistribution(list(range(len(axis.choices))))
    low, high = axis.dist.bounds
    if axis.kind == "int_uniform":
        return IntDistribution(int(low), int(high))
    return FloatDistribution(low, high, log=axis.kind == "log_uniform")


def _in_range(value: Any, dist: BaseDistribution) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return isinstance(dist, FloatDistribution | IntDistribution) and dist.low <= value <= dist.high


class Translation:
    """The axes of ``space`` as Optuna distributions, with which axes apply under each algorithm kind."""

    def __init__(self, space: Space):
        self.axes = list(space.axes)
        self.dists = {a.path: distribution(a) for a in self.axes}
        backend = space.base.backend.kind
        kind_axis = next((a for a in self.axes if a.path == KIND), None)
        kinds = [str(k) for k in kind_axis.choices] if kind_axis else [space.base.algorithm.kind]
        self.fields = {k: set(params_model(k, backend).model_fields) for k in kinds}
        self.base_kind = space.base.algorithm.kind

    def applies(self, path: str, kind: str) -> bool:
        """Whether the axis changes a recipe of algorithm ``kind`` (a param the kind lacks is dropped)."""
        if not path.startswith("algorithm.params."):
            return True
        return path.removeprefix("algorithm.params.") in self.fields.get(kind, set())

    def suggest(self, trial: optuna.Trial) -> dict[str, Any]:
        """A patch drawn through ``trial``: the kind first, then the axes that apply under it."""
        patch: dict[str, Any] = {}
        kind = self.base_kind
        for axis in sorted(self.axes, key=lambda a: a.path != KIND):
            if not self.applies(axis.path, kind):
                continue
            dist = self.dists[axis.path]
            if isinstance(dist, CategoricalDistribution):
                value: Any = axis.choices[int(trial.suggest_categorical(axis.path, range(len(axis.choices))))]
            elif isinstance(dist, IntDistribution):
                value = trial.suggest_int(axis.path, dist.low, dist.high)
            else:
                assert isinstance(dist, FloatDistribution)
                value = trial.suggest_float(axis.path, dist.low, dist.high, log=dist.log)
            patch[axis.path] = value
            if axis.path == KIND:
                kind = str(value)
        return patch

    def params(self, patch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        """A told patch as Optuna params (internal values) and their distributions: the axes that
        applied to its recipe and whose value lies in the distribution (a base run's unset field does not)."""
        kind = str(patch.get(KIND, self.base_kind))
        params: dict[str, Any] = {}
        dists: dict[str, BaseDistribution] = {}
        for axis in self.axes:
            if axis.path not in patch or not self.applies(axis.path, kind):
                continue
            value, dist = patch[axis.path], self.dists[axis.path]
            if isinstance(dist, CategoricalDistribution):
                index = next((i for i, c in enumerate(axis.choices) if c == value), None)
                if index is None:
                    continue
                value = index
            elif not _in_range(value, dist):
                continue
            params[axis.path] = value
            dists[axis.path] = dist
        return params, dists
