"""Backend ``local`` and inference ``local``: loading, batching, stops, chat template, factory, errors."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
from conftest import TINY

from evsys_local.backend import LocalBackend
from evsys_local.inference import LocalInference, cut_at_stop
from evsys_sdk.base.errors import EvsysError
from evsys_sdk.plugins.registry import get_default_inference_factory
from evsys_sdk.spec.config import RunConfig
from evsys_sdk.spec.protocols import RunResult

PROMPTS = ["1+2", "a much longer prompt about 33+44 and more", "7"]


@pytest.fixture(scope="module")
def client() -> LocalInference:
    return LocalInference(model_name=str(TINY), device="cpu", batch_size=8)


def test_backend_prepare_handles_and_teardown(tmp_path: Path) -> None:
    backend = LocalBackend()
    handles = backend.prepare(model={"name": str(TINY)}, run_dir=str(tmp_path))
    assert handles["backend"] == "local" and handles["device"] == "cpu" and handles["dtype"] == "float32"
    assert handles["tokenizer"].pad_token is not None
    assert handles["model"].dtype.is_floating_point
    backend.teardown(handles)
    assert "model" not in handles


def test_missing_stack_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "trl", None)
    with pytest.raises(EvsysError, match="pip install evsys-local"):
        LocalBackend().prepare(model={"name": str(TINY)}, run_dir=str(tmp_path))


def test_batched_generation_matches_one_by_one(client: LocalInference) -> None:
    batch = client.generate_batch(PROMPTS, max_tokens=8)
    assert batch == [client.generate_batch([p], max_tokens=8)[0] for p in PROMPTS]


def test_greedy_is_deterministic_and_sampling_runs(client: LocalInference) -> None:
    assert client.generate(prompt="1+2", max_tokens=8) == client.generate(prompt="1+2", max_tokens=8)
    assert isinstance(client.generate(prompt="1+2", max_tokens=8, temperature=1.0), str)


def test_stop_strings_cut_the_output(client: LocalInference) -> None:
    full = client.generate(prompt=PROMPTS[1], max_tokens=16)
    assert len(full) > 4
    stop = full[2:4]
    cut = client.generate(prompt=PROMPTS[1], max_tokens=16, stop=[stop])
    assert cut == full[: full.index(stop)]
    assert cut_at_stop("abcXdefY", ["Y", "X"]) == "abc"


def test_chat_template_rendering(client: LocalInference) -> None:
    assert client.render("hi") == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    raw = LocalInference.from_model(client._model, client._tokenizer, chat_template=False)
    assert raw.render("hi") == "hi"


def test_concurrent_calls_are_safe_and_equal_sequential(client: LocalInference) -> None:
    expected = {p: client.generate(prompt=p, max_tokens=6) for p in PROMPTS}
    got: dict[str, str] = {}

    def call(p: str) -> None:
        got[p] = client.generate(prompt=p, max_tokens=6)

    threads = [threading.Thread(target=call, args=(p,)) for p in PROMPTS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert got == expected


def test_default_inference_factory_serves_final_checkpoint(tmp_path: Path) -> None:
    run = RunConfig.model_validate(
        {"name": "r", "model": {"name": str(TINY)}, "algorithm": {"kind": "sft"}, "backend": {"kind": "local"}}
    )
    factory = get_default_inference_factory(run)
    assert factory is not None
    served = factory(RunResult("r", "completed", artifacts={"final_checkpoint": str(TINY)}), run)
    assert isinstance(served, LocalInference)
    with pytest.raises(EvsysError, match="final_checkpoint"):
        factory(RunResult("r", "completed"), run)


def test_tiny_model_is_deterministic_and_cli_builds_it(tmp_path: Path) -> None:
    from evsys_local.testing import make_tiny_model
    from evsys_sdk.cli.main import main

    a = make_tiny_model(tmp_path / "a")
    assert main(["local", "tiny-model", str(tmp_path / "b")]) == 0
    for name in ("model.safetensors", "tokenizer.json", "config.json", "chat_template.jinja"):
        assert (a / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    tok = LocalInference(model_name=str(a), device="cpu")._tokenizer
    assert tok.tokenize("123") == ["1", "2", "3"]  # digits split: arithmetic is learnable
    assert "{% generation %}" in tok.chat_template
