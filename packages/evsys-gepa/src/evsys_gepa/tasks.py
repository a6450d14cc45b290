"""A run's rows as GEPA data instances: the user text sent under a candidate prompt and how its
completion is scored, with feedback for the reflection LM.

* a ``PromptExample`` (``{inputs, expected}``): user text = one ``<key>: <value>`` line per input,
  scored by a score function, a verifier fn, a registered metric, or the default score;
* a Harbor task (``{task_id, instruction, verifier}``): user text = the instruction, scored by its
  verifier (``verify_task``), exactly as a benchmark scores it;
* any other row (``prompt``/``completion``, chat ``messages``): the prompt a benchmark would send and
  the row's reference answer, scored like a prompt example.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from evsys_sdk.builtins.verifier_fns import verify_task
from evsys_sdk.spec.data_types import (
    HarborTask,
    InProcessVerifier,
    PromptExample,
    detect_format,
    harbor_task_from_dict,
    row_answer,
    row_prompt,
)

__all__ = [
    "Example",
    "ScoreFn",
    "Scored",
    "default_score",
    "load_examples",
    "make_scorer",
    "partial_match",
    "user_text",
]

ScoreFn = Callable[[str, Any], float]
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class Scored:
    score: float
    feedback: str


@dataclass(frozen=True)
class Example:
    """One data instance: ``text`` is what the task LM is asked (under the candidate prompt)."""

    id: str
    text: str
    expected: Any
    task: HarborTask | None = None


def expected_text(expected: Any) -> str:
    """``expected`` as the text a completion is compared with (JSON for non-strings)."""
    return expected if isinstance(expected, str) else json.dumps(expected, sort_keys=True)


def default_score(completion: str, expected: Any) -> float:
    """1.0 when the stripped completion equals ``expected`` (JSON-dumped if not a string), 0.5 when it
    contains it, else 0; an example without an expected answer scores 0."""
    if expected is None:
        return 0.0
    want, got = expected_text(expected).strip(), completion.strip()
    if not want:
        return 0.0
    return 1.0 if got == want else 0.5 if want in got else 0.0


def partial_match(model_output: str, expected: Any, params: dict[str, Any]) -> float:
    """Verifier fn ``gepa_partial_match``: ``default_score`` for Harbor tasks, so a benchmark gives the
    same graded credit (1 exact, 0.5 contained) GEPA optimises for."""
    return default_score(model_output or "", expected)


def user_text(inputs: Mapping[str, Any]) -> str:
    """A prompt example's inputs as ``<key>: <value>`` lines."""
    return "\n".join(f"{k}: {v if isinstance(v, str) else json.dumps(v)}" for k, v in inputs.items())


def _example(i: int, row: Any) -> Example:
    if isinstance(row, HarborTask):
        return Example(str(row.task_id), row.instruction, _task_expected(row), row)
    if isinstance(row, PromptExample):
        return Example(str(row.metadata.get("id", i)), user_text(row.inputs), row.expected)
    if not isinstance(row, Mapping):
        raise ValueError(f"example {i} is a {type(row).__name__}, not a row mapping")
    fmt = detect_format(row)
    if fmt == "harbor_task":
        task = harbor_task_from_dict(row)
        return Example(str(task.task_id), task.instruction, _task_expected(task), task)
    if fmt == "prompt_dataset":
        meta = row.get("metadata") or {}
        return Example(str(meta.get("id", i)), user_text(row.get("inputs") or {}), row.get("expected"))
    return Example(str(i), row_prompt(dict(row)), row_answer(dict(row)))


def _task_expected(task: HarborTask) -> Any:
    return task.verifier.expected if isinstance(task.verifier, InProcessVerifier) else None


def load_examples(rows: Sequence[Any]) -> list[Example]:
    """Every row as an ``Example``; ids are made unique (a repeated id gets ``#<index>``)."""
    out: list[Example] = []
    seen: set[str] = set()
    for i, row in enumerate(rows):
        ex = _example(i, row)
        if ex.id in seen:
            ex = Example(f"{ex.id}#{i}", ex.text, ex.expected, ex.task)
        seen.add(ex.id)
        out.append(ex)
    return out


def _describe(completion: str, expected: Any, score: float, perfect: float) -> str:
    if score >= perfect:
        return f"Correct (score {score:.2f})."
    if expected is None:
        return f"Score {score:.2f}; this example has no reference answer."
    want = expected_text(expected).strip()
    where = (
        "The response contains the expected answer but is not exactly it."
        if want and want in completion
        else "The response does not contain the expected answer."
    )
    return f"Score {score:.2f}. Expected answer: {want}. {where}"


def make_scorer(
    *,
    score_fn: ScoreFn | None = None,
    verifier_fn: str | None = None,
    verifier_params: Mapping[str, Any] | None = None,
    metric: Any = None,
    perfect_score: float = 1.0,
) -> Callable[[Example, str], Scored]:
    """How each example's completion is scored. Harbor tasks always use their own verifier; the
    others use, in order of precedence, ``score_fn(completion, expected)``, the in-process verifier fn
    ``verifier_fn(completion, expected, params)``, the metric (predictions/targets style, one example
    at a time, the answer inside ``<answer>`` tags when present), else ``default_score``."""
    from evsys_sdk.builtins.verifier_fns import get_fn

    fn = get_fn(verifier_fn) if verifier_fn else None  # an unknown name fails before any model call
    params = dict(verifier_params or {})

    def score_plain(completion: str, expected: Any) -> float:
        if score_fn is not None:
            return float(score_fn(completion, expected))
        if fn is not None:
            return float(fn(completion, expected, params))
        if metric is not None:
            from evsys_sdk.builtins.metrics import compute_metric

            m = _ANSWER.search(completion)
            answer = (m.group(1) if m else completion).strip()
            prediction = {"answer": answer, "completion": completion}
            return float(compute_metric(metric, predictions=[prediction], targets=[{"answer": expected}]))
        return default_score(completion, expected)

    def score(example: Example, completion: str) -> Scored:
        if example.task is not None:
            result = verify_task(example.task, completion)
            base = _describe(completion, example.expected, result.reward, perfect_score)
            info = {k: v for k, v in result.info.items() if k != "fn_name"}
            extra = f" Verifier details: {json.dumps(info, default=str)}" if info else ""
            return Scored(result.reward, base + extra)
        value = score_plain(completion, example.expected)
        return Scored(value, _describe(completion, example.expected, value, perfect_score))

    return score
