"""local_sft: learning, checkpoints, reload, continual init, resume, metrics, errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import CHAT_ROWS, TINY, local_config, metric_rows
from safetensors.torch import load_file

from evsys_local.inference import LocalInference
from evsys_sdk.run.runner import run_experiment

SFT = {"max_steps": 12, "batch_size": 4, "learning_rate": 5e-3, "save_at_fractions": [0.5, 1.0]}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    out = tmp_path_factory.mktemp("sft")
    [result] = run_experiment(local_config(out, "sft", SFT, CHAT_ROWS))
    assert result.status == "completed", result.error
    return result, out / "contract"


def test_loss_decreases_and_metrics_are_named(lora_run: tuple[Any, Path]) -> None:
    result, run_dir = lora_run
    rows = metric_rows(run_dir)
    losses = [r["metrics"]["train/loss"] for r in rows if "train/loss" in r["metrics"]]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    keys = set().union(*(r["metrics"] for r in rows))
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/tokens_per_second"} <= keys
    assert result.metrics["train/final_loss"] == pytest.approx(losses[-1])


def test_checkpoints_at_fractions(lora_run: tuple[Any, Path]) -> None:
    result, _run_dir = lora_run
    assert Path(result.artifacts["ckpt_step_6"]).name == "checkpoint-6"
    assert result.artifacts["ckpt_step_12"] == result.artifacts["state-final"]
    state = Path(result.artifacts["state-final"])
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json", "adapter_model.safetensors"} <= {
        p.name for p in state.iterdir()
    }
    assert (Path(result.artifacts["final_checkpoint"]) / "adapter_config.json").exists()


def test_adapter_reloads_and_generates_like_the_trained_model(lora_run: tuple[Any, Path]) -> None:
    result, _ = lora_run
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    client = LocalInference(model_name=result.artifacts["final_checkpoint"], device="cpu")
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(TINY), result.artifacts["final_checkpoint"])
    reference = LocalInference.from_model(peft.eval(), client._tokenizer)
    prompts = ["1+2", "3+3", "0+1"]
    got = client.generate_batch(prompts, max_tokens=6)
    assert got == reference.generate_batch(prompts, max_tokens=6)
    base = LocalInference(model_name=str(TINY), device="cpu").generate_batch(prompts, max_tokens=6)
    assert got != base  # the adapter changed the model


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


def test_full_finetune_and_continual_init_changes_starting_weights(tmp_path: Path) -> None:
    [first] = run_experiment(local_config(tmp_path / "a", "sft", {**SFT, "lora_rank": 0, "max_steps": 3}, CHAT_ROWS))
    assert first.status == "completed", first.error
    final = Path(first.artifacts["final_checkpoint"])
    trained, base = _weights(final), _weights(TINY)
    assert any(not torch.equal(trained[k], base[k]) for k in base)

    starts: list[dict[str, torch.Tensor]] = []
    from transformers import TrainerCallback

    class Capture(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            starts.append({k: v.detach().clone() for k, v in model.state_dict().items()})

    cfg = local_config(
        tmp_path / "b",
        "sft",
        {**SFT, "lora_rank": 0, "max_steps": 1},
        CHAT_ROWS,
        init_from_checkpoint=first.artifacts["state-final"],
    )
    [second] = run_experiment(cfg, extra_context={"local_trainer_callbacks": [Capture()]})
    assert second.status == "completed", second.error
    start = starts[0]
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.equal(start[key], trained[key])
    assert not torch.equal(start[key], base[key])


def test_continual_lora_chain_serves_merged_weights(lora_run: tuple[Any, Path], tmp_path: Path) -> None:
    first, _ = lora_run
    cfg = local_config(
        tmp_path, "sft", {**SFT, "max_steps": 2}, CHAT_ROWS, init_from_checkpoint=first.artifacts["state-final"]
    )
    [second] = run_experiment(cfg)
    assert second.status == "completed", second.error
    manifest = json.loads((Path(second.artifacts["final_checkpoint"]) / "evsys_checkpoint.json").read_text())
    assert manifest["merged_adapters"] == [str(Path(first.artifacts["state-final"]).resolve())]
    assert manifest["base_model"] == str(TINY)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    served = LocalInference(model_name=second.artifacts["final_checkpoint"], device="cpu")._model
    manual = AutoModelForCausalLM.from_pretrained(TINY)
    for adapter in (first.artifacts["state-final"], second.artifacts["final_checkpoint"]):
        manual = PeftModel.from_pretrained(manual, adapter).merge_and_unload()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert torch.allclose(served.state_dict()[key], manual.state_dict()[key])
    assert not torch.allclose(served.state_dict()[key], _weights(TINY)[key])


def test_resume_restores_optimizer_state(lora_run: tuple[Any, Path], tmp_path: Path) -> None:
    first, _ = lora_run
    state = Path(first.artifacts["state-final"])
    saved = torch.load(state / "optimizer.pt", weights_only=True)
    seen: list[tuple[int, dict[str, Any]]] = []
    from transformers import TrainerCallback

    class Capture(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, st: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            seen.append((st.global_step, copy.deepcopy(optimizer.state_dict())))  # training mutates it

    cfg = local_config(tmp_path, "sft", {**SFT, "max_steps": 14}, CHAT_ROWS, load_checkpoint_path=str(state))
    [resumed] = run_experiment(cfg, extra_context={"local_trainer_callbacks": [Capture()]})
    assert resumed.status == "completed", resumed.error
    step, opt = seen[0]
    assert step == 12
    restored = opt["state"]
    assert restored and len(restored) == len(saved["state"])
    for k, v in saved["state"].items():
        assert torch.equal(restored[k]["exp_avg"], v["exp_avg"])
    steps = [r["step"] for r in metric_rows(tmp_path / "contract") if "train/loss" in r["metrics"]]
    assert steps == [13, 14]


def test_prompt_completion_rows(tmp_path: Path) -> None:
    rows = [{"prompt": f"{a}+{a}=", "completion": str(2 * a)} for a in range(8)]
    [result] = run_experiment(local_config(tmp_path, "local_sft", {"max_steps": 2}, rows))
    assert result.status == "completed", result.error


def test_user_errors_are_clear(tmp_path: Path) -> None:
    [bad_rows] = run_experiment(local_config(tmp_path / "a", "sft", {"max_steps": 1}, [{"text": "x"}]))
    assert bad_rows.status == "failed" and "neither 'messages'" in (bad_rows.error or "")
    from evsys_sdk.testing import mock_experiment_config

    cfg = mock_experiment_config(tmp_path / "b", algorithm="local_sft", params={"max_steps": 1})
    [wrong_backend] = run_experiment(cfg)
    assert "requires backend kind 'local'" in (wrong_backend.error or "")
    cfg = local_config(tmp_path / "c", "sft", {"max_steps": 1}, CHAT_ROWS, load_checkpoint_path=str(tmp_path))
    [not_state] = run_experiment(cfg)
    assert "not a resumable training state" in (not_state.error or "")
    cfg = mock_experiment_config(
        tmp_path / "d", algorithm="sft", backend="local", model={"name": str(tmp_path / "nope")}
    )
    [missing] = run_experiment(cfg)
    assert "could not load model" in (missing.error or "") and "tiny-model" in (missing.error or "")
