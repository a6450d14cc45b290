"""The ``llm`` proposer with a scripted language model: prompts (objective, space with descriptions and
bounds, history with CIs, rejection reasons), answers parsed and repaired, bad JSON, out-of-space values
and refusals rejected with the reason fed back, explore mixing, and its calls counted apart in ``spent``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import Field
from test_search import search_config, write

from evsys_sdk.cli.main import main
from evsys_sdk.search import evolve
from evsys_sdk.search.llm import parse_patches
from evsys_sdk.spec.config import StrictModel
from evsys_sdk.testing import search as search_kit

pytestmark = pytest.mark.timeout(120)

PROMPTS: list[str] = []


class ScriptedLM:
    """An inference client answering ``answers`` in order (the last one again when they run out)."""

    name: ClassVar[str] = "scripted_lm"

    class Config(StrictModel):
        answers: list[str] = Field(min_length=1)

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        self.i = 0

    def generate(self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: Any = None) -> str:
        PROMPTS.append(prompt)
        answer = self.config.answers[min(self.i, len(self.config.answers) - 1)]
        self.i += 1
        return answer


@pytest.fixture
def host(plugin_host: Any) -> Any:
    from evsys_sdk.plugins.registry import registry

    plugin_host.add_plugin(search_kit, "search_kit")
    registry("inference_client").add(ScriptedLM)
    PROMPTS.clear()
    return plugin_host


SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
    "algorithm.params.noise": {"uniform": [0, 0.1]},
}


def llm_config(tmp_path: Path, answers: list[str], **params: Any) -> dict[str, Any]:
    proposer = {"kind": "llm", "params": {"inference": {"kind": "scripted_lm", "params": {"answers": answers}}}}
    proposer["params"].update(params)
    return search_config(tmp_path, space=SPACE, proposer=proposer, budget={"candidates": 4}, parallel=1)


def test_answers_are_parsed_and_trivially_repaired() -> None:
    assert parse_patches('```json\n[{"a.b": 1,},]\n```') == [{"a.b": 1}]
    assert parse_patches("Sure! {'a.b': True, 'c': None}") == [{"a.b": True, "c": None}]
    assert parse_patches('[{"a": 1}, {"a": 2}]') == [{"a": 1}, {"a": 2}]
    assert "no JSON" in str(parse_patches("I cannot help with tuning this model."))
    assert "not valid JSON" in str(parse_patches("[{a: 1 2}]"))


def test_the_model_proposes_and_hears_why_it_was_rejected(tmp_path: Path, host: Any) -> None:
    answers = [
        '```json\n[{"algorithm.params.x": 1.5, "algorithm.params.depth": "5.0",}]\n```',  # repaired: depth 5
        '[{"algorithm.params.x": 50}]',  # outside the space
        "I'm sorry, I can't help with that.",  # a refusal
        '[{"algorithm.params.depht": 3}]',  # not a path
    ]
    result = evolve(llm_config(tmp_path, answers, explore=0.0))
    ops = [c.operator for c in result.candidates]
    assert ops == ["base", "llm", "random", "random"]  # an unusable answer leaves its slot to random search
    llm = result.candidates[1]
    assert llm.patch["algorithm.params.depth"] == 5 and llm.run_config.algorithm.params["depth"] == 5
    assert len(PROMPTS) == 3
    first, second, third = PROMPTS
    assert "Objective: maximize the score" in first
    assert "algorithm.params.x: uniform in [-5, 5]" in first
    assert "int_uniform in [1, 12]" in first
    assert "seed noise, standard deviation of the score" in first  # the field's schema description
    assert "95% CI" in first and "n=2" in first  # the base candidate's scores
    assert "95% CI" in second and '"algorithm.params.x": 1.5' in second
    assert "algorithm.params.x: 50 is outside [-5, 5]" in third
    assert result.spent["candidates"] == 4  # the proposer's calls are not evaluations
    assert result.spent["proposer"] == {"calls": 3, "unparsed_answers": 1, "unfit_patches": 1}


def test_a_refusal_and_an_unknown_path_are_fed_back(tmp_path: Path, host: Any) -> None:
    answers = ["No.", '[{"algorithm.params.depht": 3}]', '[{"algorithm.params.depth": 7}]']
    cfg = llm_config(tmp_path, answers, explore=0.0)
    cfg["search"]["budget"] = {"candidates": 4}
    result = evolve(cfg)
    assert "your answer: no JSON object or list in it" in PROMPTS[1]
    assert "algorithm.params.depht is not a path of the space" in PROMPTS[2]
    assert result.candidates[3].operator == "llm" and result.candidates[3].patch["algorithm.params.depth"] == 7


def test_explore_mixes_random_proposals_and_the_base_comes_first(tmp_path: Path, host: Any) -> None:
    always_random = evolve(llm_config(tmp_path / "a", ['[{"algorithm.params.x": 1}]'], explore=1.0))
    assert [c.operator for c in always_random.candidates] == ["base", "random", "random", "random"]
    assert always_random.spent["proposer"]["calls"] == 0 and not PROMPTS
    cfg = llm_config(tmp_path / "b", ['[{"algorithm.params.x": 1}]', '[{"algorithm.params.x": 2}]'], explore=0.2)
    cfg["search"]["budget"] = {"candidates": 12}
    mixed = evolve(cfg)
    ops = [c.operator for c in mixed.candidates]
    assert ops[0] == "base" and "random" in ops and "llm" in ops


def test_an_unknown_inference_kind_is_found_before_any_arm(tmp_path: Path, host: Any, capsys: Any) -> None:
    cfg = llm_config(tmp_path, ["[]"])
    cfg["search"]["proposer"]["params"]["inference"]["kind"] = "scripted_llm"
    assert main(["evolve", str(write(tmp_path, cfg))]) == 1
    err = capsys.readouterr().err
    assert "search.proposer.params.inference.kind" in err and "scripted_lm" in err, err
    assert not (tmp_path / "out").exists()
