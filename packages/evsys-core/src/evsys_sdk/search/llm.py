"""The proposer ``llm``: any registered inference client proposes recipes.

Each ask sends one prompt: the objective, every axis with its field's schema ``description`` and bounds,
the best and the most recent candidates with their mean, 95% CI and n, and the reasons the last
proposals were rejected. The model answers with a JSON list of patches (dotted path -> value). The answer
is parsed (code fences, trailing commas, single quotes and Python literals repaired), each patch is
checked against the space (unknown path, value outside its distribution; an integral float for an int
axis is taken as the int) and a patch that fails is rejected with its reason, fed back next time. An
answer with no usable patch (a refusal, bad JSON) leaves its slots to random proposals, so the search
never stalls on the model.

The search starts from the base recipe (``include_base``) and mixes in random proposals (each slot with
probability ``explore``): a model advisor is then never worse than random search seeded with the default,
and its operator names (``llm`` / ``random`` / ``base``) keep the two apart in the records. Proposer
calls and the model's token usage (when the client reports it, as evsys-frontier's do) are counted in
``spent["proposer"]``, apart from the evaluation budget.

The client is built in ``setup`` (a missing API key or SDK stops the search before any arm). A call that
fails transiently (429, 5xx, timeouts: the eval engine's retry rule, honouring Retry-After) is tried
``attempts`` times; one still failing leaves its slots to random proposals and is counted as a
``failed_calls``; any other error (a 4xx: a wrong model name, a bad key) stops the search with the
provider's message.
"""

from __future__ import annotations

import ast
import json
import re
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from evsys_sdk.search.proposers import Proposal, Proposer
from evsys_sdk.spec.config import StrictModel

if TYPE_CHECKING:
    from evsys_sdk.search.engine import Candidate
    from evsys_sdk.search.space import Axis, Space


class InferenceSpec(StrictModel):
    kind: str = Field(description="a registered inference client (evsys list --kind inference)")
    params: dict[str, Any] = Field(default_factory=dict, description="the client's params")

    @field_validator("kind")
    @classmethod
    def _registered(cls, kind: str) -> str:
        from evsys_sdk.base.errors import EvsysError
        from evsys_sdk.plugins.registry import registry

        try:
            registry("inference_client").get(kind)
        except EvsysError as exc:  # it names what is registered and what to install: located at this key
            raise ValueError(str(exc)) from None
        return kind


class LLMProposer(Proposer):
    """Recipes proposed by a language model, mixed with random ones."""

    name: ClassVar[str] = "llm"

    class Config(Proposer.Config):
        inference: InferenceSpec = Field(description="the model that proposes: {kind, params}")
        explore: float = Field(default=0.2, ge=0, le=1, description="probability a slot is a random proposal")
        include_base: bool = Field(default=True, description="propose the base run's own values first")
        history: int = Field(default=8, ge=1, le=200, description="best and recent candidates shown in the prompt")
        max_tokens: int = Field(default=1024, ge=16, le=32000, description="tokens the model may answer with")
        temperature: float | None = Field(
            default=None, ge=0, le=2, description="the model's sampling temperature (default: the client's own)"
        )
        attempts: int = Field(default=3, ge=1, le=10, description="tries per model call on transient errors")

    config: Config

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self._client: Any = None
        self._rejected: list[str] = []  # reasons since the last prompt
        self.calls = 0
        self.failed = 0  # calls that still failed transiently after ``attempts`` tries
        self.unparsed = 0
        self.unfit = 0  # patches the proposer rejected itself (outside the space); the search's own are apart

    def setup(self, space: Space, *, maximize: bool) -> None:
        super().setup(space, maximize=maximize)
        self._client_of()

    def reject(self, patch: dict[str, Any], reason: str) -> None:
        self._rejected.append(f"{json.dumps(patch, default=str)}: {reason}")

    def usage(self) -> dict[str, Any]:
        out: dict[str, Any] = {"calls": self.calls, "unparsed_answers": self.unparsed, "unfit_patches": self.unfit}
        if self.failed:
            out["failed_calls"] = self.failed
        reported = getattr(self._client, "usage", None)  # evsys-frontier's is a property; a method is read too
        if callable(reported):
            reported = reported()
        if isinstance(reported, dict):
            out.update({k: v for k, v in reported.items() if k in ("input_tokens", "output_tokens")})
        return out

    def ask(self, history: list[Candidate], n: int) -> list[Proposal]:
        assert self.space is not None
        out: list[Proposal] = []
        if self.config.include_base and not history and n:
            out.append(Proposal(dict(self.space.base_patch), operator="base"))
        slots = [self.rng.random() < self.config.explore for _ in range(n - len(out))]
        wanted = slots.count(False)
        patches = self._propose(history, wanted) if wanted else []
        for explore in slots:
            if not explore and patches:
                out.append(Proposal(patches.pop(0), operator="llm"))
            else:
                out.append(Proposal(self.space.sample(self.rng), operator="random"))
        return out

    # the model

    def _client_of(self) -> Any:
        if self._client is None:
            from evsys_sdk.plugins.registry import registry

            spec = self.config.inference
            self._client = registry("inference_client").get(spec.kind)(**spec.params)
        return self._client

    def _generate(self, prompt: str) -> str | None:
        """The model's answer, or None when the call still failed transiently after ``attempts`` tries."""
        from evsys_sdk.eval.retry import RetryPolicy, retry_sync

        client, c = self._client_of(), self.config
        sampling = {} if c.temperature is None else {"temperature": c.temperature}  # unset: the client's default
        self.calls += 1
        answer = retry_sync(
            RetryPolicy(max_attempts=c.attempts, rng=self.rng.random),
            lambda: client.generate(prompt=prompt, max_tokens=c.max_tokens, **sampling),
        )
        if answer is None:
            self.failed += 1
        return answer

    def _propose(self, history: list[Candidate], n: int) -> list[dict[str, Any]]:
        prompt = self.prompt(history, n)
        self._rejected = []
        answer = self._generate(prompt)
        if answer is None:
            return []
        parsed = parse_patches(answer)
        if isinstance(parsed, str):
            self.unparsed += 1
            self._rejected.append(f"your answer: {parsed}")
            return []
        out = []
        for patch in parsed[:n]:
            checked = self._fit(patch)
            if isinstance(checked, str):
                self.unfit += 1
                self._rejected.append(f"{json.dumps(patch, default=str)}: {checked}")
            else:
                out.append(checked)
        return out

    def _fit(self, patch: Any) -> dict[str, Any] | str:
        """The patch with trivially repaired values, or why it does not fit the space."""
        from evsys_sdk.search.engine import _outside

        assert self.space is not None
        if not isinstance(patch, dict) or not patch:
            return "a patch is a non-empty JSON object of dotted path -> value"
        axes = {a.path: a for a in self.space.axes}
        out = dict(self.space.base_patch)
        for path, value in patch.items():
            axis = axes.get(path)
            if axis is None:
                return f"{path} is not a path of the space (paths: {', '.join(axes)})"
            value = _coerce(axis, value)
            why = _outside(axis.dist, value)
            if why:
                return f"{path}: {why}"
            out[path] = value
        return out

    def prompt(self, history: list[Candidate], n: int) -> str:
        assert self.space is not None
        goal = "maximize" if self.maximize else "minimize"
        lines = [
            "You are tuning a training recipe. Propose new recipes to try next.",
            f"Objective: {goal} the score (each candidate's mean over its seeds).",
            "",
            "Search space (dotted path: distribution; what the field means):",
        ]
        lines += [
            f"- {a.path}: {_describe(a, self.space)}; base value {self.space.base_patch[a.path]!r}"
            for a in self.space.axes
        ]
        scored = [c for c in history if c.status == "scored" and c.mean is not None]
        k = self.config.history
        best = sorted(scored, key=lambda c: c.mean or 0.0, reverse=self.maximize)[:k]
        recent = [c for c in history[-k:] if c not in best and c in scored]
        if best:
            lines += ["", "Best candidates so far:"] + [_line(c) for c in best]
        if recent:
            lines += ["", "Most recent candidates:"] + [_line(c) for c in recent]
        failed = [c for c in history[-k:] if c.status == "failed"]
        if failed:
            lines += ["", "Failed candidates:"] + [f"- {json.dumps(c.patch, default=str)}: {c.error}" for c in failed]
        if self._rejected:
            lines += ["", "Your last proposals were rejected:"] + [f"- {r}" for r in self._rejected]
        lines += [
            "",
            f"Answer with only a JSON list of {n} object(s), each mapping dotted paths of the space to values, e.g.",
            json.dumps([{a.path: self.space.base_patch[a.path] for a in self.space.axes[:2]}], default=str),
            "Paths you leave out keep the base value. Propose recipes not tried yet.",
        ]
        return "\n".join(lines)


def _describe(axis: Axis, space: Space) -> str:
    """The axis's distribution and its field's schema description (of the base run's kind)."""
    from evsys_sdk.search.space import _backend_model, _property, params_model

    dist = axis.dist
    shape = (
        f"one of {dist.choice}" if axis.kind == "choice" else f"{axis.kind} in [{dist.bounds[0]:g}, {dist.bounds[1]:g}]"
    )
    section, _, field = axis.path.rpartition(".")
    base = space.base
    model: Any = None
    if section == "algorithm.params":
        model = params_model(base.algorithm.kind, base.backend.kind)
    elif section == "backend.params":
        model = _backend_model(base.backend.kind)
    description = ""
    if model is not None and field in model.model_fields:
        description = str(_property(model, field).get("description", ""))
    return shape + (f"; {description}" if description else "")


def _line(c: Candidate) -> str:
    ci = f", 95% CI [{c.ci95[0]:.4g}, {c.ci95[1]:.4g}]" if c.ci95 else ""
    return f"- {json.dumps(c.patch, default=str)}: mean {c.mean:.4g}{ci}, n={len(c.scores)}"


def _coerce(axis: Axis, value: Any) -> Any:
    """Trivial repairs: a numeric string read as a number, an integral float for an int axis."""
    if isinstance(value, str) and axis.kind != "choice":
        try:
            value = float(value)
        except ValueError:
            return value
    if axis.kind == "int_uniform" and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.S)


def parse_patches(text: str) -> list[Any] | str:
    """The JSON list (or one object) in a model's answer, repaired where trivial, or why there is none."""
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start < 0:
        return "no JSON object or list in it (answer with only the JSON)"
    end = max(body.rfind("]"), body.rfind("}"))
    snippet = body[start : end + 1]
    for attempt in (snippet, re.sub(r",\s*([\]}])", r"\1", snippet)):
        try:
            value = json.loads(attempt)
            break
        except json.JSONDecodeError:
            try:  # single quotes, True/False/None: a Python literal
                value = ast.literal_eval(attempt)
                break
            except (ValueError, SyntaxError):
                continue
    else:
        return "not valid JSON (answer with only a JSON list of objects)"
    return value if isinstance(value, list) else [value]
