"""examples/frontier end to end on the fake server: a trained mock arm beside claude and openai
baselines, an LLM-judged benchmark, and no API key anywhere in the records or logs."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from conftest import KEYS

from evsys_frontier.testing import FakePrompt, FakeProviderServer
from evsys_sdk.orchestration.experiment import Experiment

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "frontier"
CAPITALS = {"France": "Paris", "Japan": "Tokyo", "Kenya": "Nairobi", "Italy": "Rome", "Peru": "Lima", "Norway": "Oslo"}


def knows_capitals(p: FakePrompt) -> str:
    if "<response>" in p.prompt:  # a judge request
        response = p.prompt.split("<response>", 1)[1].split("</response>", 1)[0]
        reference = p.prompt.split("<reference>", 1)[1].split("</reference>", 1)[0].strip()
        return f"Checked against {reference}.\nSCORE: {1 if reference in response else 0}"
    country = re.search(r"capital of (\w+)", p.prompt)
    return CAPITALS.get(country.group(1), "Unsure") if country else "Unsure"


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(EXAMPLE, tmp_path / "examples" / "frontier")
    # the repo's pyproject.toml makes tmp_path the project root the example's paths are written from
    shutil.copy(EXAMPLE.parents[1] / "pyproject.toml", tmp_path / "pyproject.toml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_example_scores_a_trained_arm_beside_frontier_baselines(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # the SDKs' and httpx's debug logs too
    with FakeProviderServer(responder=knows_capitals, latency_s=0.01) as srv:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_url)
        result = Experiment.from_yaml("examples/frontier/config.yaml").run()
        providers = {r.provider for r in srv.requests}
    assert result.status == "completed", result.conclusion
    [arm] = result.arms
    assert arm.status == "completed" and arm.score("capitals.mean_reward") is not None
    by_model = {(e.name, next(t for t in e.tags if t.startswith("model:"))): e for e in result.baselines}
    assert set(by_model) == {
        ("capitals", "model:claude"),
        ("capitals", "model:gpt-4o-mini"),
        ("judged", "model:claude"),
    }
    assert by_model[("capitals", "model:claude")].metrics["mean_reward"] == 1.0
    assert by_model[("capitals", "model:gpt-4o-mini")].metrics["mean_reward"] == 1.0
    assert by_model[("judged", "model:claude")].metrics["mean_reward"] == 1.0  # judged by claude on the fake
    assert providers == {"anthropic", "openai_chat"}

    leaks = [
        str(p) for p in workspace.rglob("*") if p.is_file() and any(k.encode() in p.read_bytes() for k in KEYS.values())
    ]
    assert leaks == [], f"an API key was written to {leaks}"
    assert not any(k in caplog.text for k in KEYS.values()), "an API key reached the logs"


def test_failing_baseline_errors_name_no_key(
    workspace: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A provider echoing the key back in its error (some do, partly masked) never gets it into a record."""
    caplog.set_level(logging.DEBUG)
    key = KEYS["ANTHROPIC_API_KEY"]
    with FakeProviderServer() as srv:
        srv.fail(401, times=100, message=f"Incorrect API key provided: {key}")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", srv.url)
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_url)
        result = Experiment.from_yaml("examples/frontier/config.yaml").run()
    claude = [e for e in result.baselines if "model:claude" in e.tags]
    assert claude and all(e.metrics["mean_reward"] == 0.0 for e in claude)
    leaks = [str(p) for p in workspace.rglob("*") if p.is_file() and key.encode() in p.read_bytes()]
    assert leaks == [] and key not in caplog.text
