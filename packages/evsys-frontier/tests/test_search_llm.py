"""Core's ``llm`` search proposer driving each real provider SDK client against the loopback fake:
answers in prose and code fences, bad JSON, out-of-space values and refusals, each reason fed back in
the next prompt; the proposer's calls and the provider's token counts in ``spent["proposer"]``;
transient errors retried, an exhausted call left to random search, a wrong model and a missing key
stopping the search with one clear line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PROVIDERS, base_url

from evsys_frontier import hooks as frontier_hooks
from evsys_frontier.testing import FakePrompt, FakeProviderServer
from evsys_sdk.cli.main import main
from evsys_sdk.search import evolve
from evsys_sdk.testing import search as search_kit

pytestmark = pytest.mark.timeout(120)

SPACE = {
    "algorithm.params.x": {"uniform": [-5, 5]},
    "algorithm.params.depth": {"int_uniform": [1, 12]},
}


class Script:
    """A responder answering ``answers`` in order (the last again when they run out), keeping the prompts."""

    def __init__(self, answers: list[str]) -> None:
        self.answers, self.prompts = answers, []  # type: list[str]

    def __call__(self, p: FakePrompt) -> str:
        self.prompts.append(p.prompt)
        return self.answers[min(len(self.prompts), len(self.answers)) - 1]


@pytest.fixture(autouse=True)
def _workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_host: Any) -> None:
    monkeypatch.setenv("EVSYS_WORKSPACE", str(tmp_path / "workspace"))
    plugin_host.add_plugin(search_kit, "search_kit")
    plugin_host.add_plugin(frontier_hooks, "frontier")


@pytest.fixture
def script() -> Script:
    return Script(['[{"algorithm.params.x": 0.5}]'])


@pytest.fixture
def fake(script: Script) -> Iterator[FakeProviderServer]:
    with FakeProviderServer(responder=script) as srv:
        yield srv


def config(tmp_path: Path, provider: str, srv: FakeProviderServer, candidates: int, **params: Any) -> dict[str, Any]:
    kind, extra, _, _ = PROVIDERS[provider]
    inference = {"kind": kind, "params": {"base_url": base_url(kind, srv), "model": "fake-model", **extra}}
    proposer = {"kind": "llm", "params": {"inference": inference, "explore": 0.0, **params}}
    search = {"proposer": proposer, "budget": {"candidates": candidates}, "parallel": 1, "seed": 0, "space": SPACE}
    return search_kit.experiment(tmp_path / "out", search, n_repeats=2)


def test_the_llm_proposer_speaks_every_provider(
    provider: str, tmp_path: Path, fake: FakeProviderServer, script: Script
) -> None:
    script.answers = [
        'Here is my proposal:\n```json\n[{"algorithm.params.x": 1.5, "algorithm.params.depth": "5.0",},]\n```',
        "[{algorithm.params.x: 2 3}]",  # bad JSON
        '[{"algorithm.params.x": 50}]',  # outside the space
        "I'm sorry, but I can't help with that request.",  # a refusal
        "{'algorithm.params.depth': 9.0}",  # a Python literal, an integral float for an int axis
    ]
    result = evolve(config(tmp_path, provider, fake, 6))
    assert [c.operator for c in result.candidates] == ["base", "llm", "random", "random", "random", "llm"]
    first, last = result.candidates[1], result.candidates[5]
    assert first.patch["algorithm.params.x"] == 1.5 and first.run_config.algorithm.params["depth"] == 5
    assert last.run_config.algorithm.params["depth"] == 9
    assert len(script.prompts) == 5 and len(fake.requests) == 5  # one request per ask that wanted the model
    assert all(r.json.get("model") in ("fake-model", None) for r in fake.requests)  # gemini names it in the path
    prompts = script.prompts
    assert "Objective: maximize the score" in prompts[0] and "int_uniform in [1, 12]" in prompts[0]
    assert '"algorithm.params.x": 1.5' in prompts[1] and "95% CI" in prompts[1]
    assert "your answer: not valid JSON" in prompts[2]
    assert "algorithm.params.x: 50 is outside [-5, 5]" in prompts[3]
    assert "your answer: no JSON object or list in it" in prompts[4]
    spent = result.spent["proposer"]
    assert {k: spent[k] for k in ("calls", "unparsed_answers", "unfit_patches")} == {
        "calls": 5,
        "unparsed_answers": 2,
        "unfit_patches": 1,
    }
    # The provider's own token counts (the fake counts words), apart from the evaluation budget.
    assert spent["input_tokens"] >= sum(len(p.split()) for p in prompts) and spent["output_tokens"] > 20
    assert result.spent["candidates"] == 6


def test_transient_errors_are_retried_and_an_exhausted_call_is_left_to_random(
    tmp_path: Path, fake: FakeProviderServer, script: Script
) -> None:
    script.answers = ['[{"algorithm.params.x": 1.0}]', '[{"algorithm.params.x": 2.0}]']
    fake.fail(429, retry_after=0)  # the first call: retried after what the server asked
    result = evolve(config(tmp_path / "a", "claude", fake, 3))
    assert [c.operator for c in result.candidates] == ["base", "llm", "llm"]
    assert len(fake.requests) == 3 and "failed_calls" not in result.spent["proposer"]

    fake.clear()
    script.prompts.clear()
    fake.fail(503, times=2, retry_after=0)
    result = evolve(config(tmp_path / "b", "openai", fake, 3, attempts=2))
    assert [c.operator for c in result.candidates] == ["base", "random", "llm"]
    assert result.spent["proposer"]["failed_calls"] == 1 and result.spent["proposer"]["calls"] == 2
    assert len(fake.requests) == 3


def test_the_proposer_temperature_reaches_the_provider(tmp_path: Path, fake: FakeProviderServer) -> None:
    evolve(config(tmp_path / "a", "openai", fake, 2, temperature=0.9))
    assert fake.requests[-1].json["temperature"] == 0.9
    evolve(config(tmp_path / "b", "openai", fake, 2))  # unset: the client's own default_temperature
    assert fake.requests[-1].json["temperature"] == 0.0


def _write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "search.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_a_wrong_model_stops_the_search_with_the_providers_message(
    tmp_path: Path, fake: FakeProviderServer, capsys: Any
) -> None:
    fake.fail(404, message="model 'fake-model' does not exist")
    assert main(["evolve", str(_write(tmp_path, config(tmp_path, "claude", fake, 3)))]) == 1
    err = capsys.readouterr().err
    assert "model 'fake-model' does not exist" in err and "Traceback" not in err, err
    assert len(fake.requests) == 1  # a 4xx is not retried


def test_a_missing_key_stops_the_search_before_any_arm(
    tmp_path: Path, fake: FakeProviderServer, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    assert main(["evolve", str(_write(tmp_path, config(tmp_path, "claude", fake, 3)))]) == 1
    err = capsys.readouterr().err
    assert "ANTHROPIC_API_KEY" in err and "Traceback" not in err, err
    assert not list((tmp_path / "out").glob("search-*")) and not fake.requests
