"""The backend's scale params: validated with a located line before any arm, wired into TRL; QLoRA and
GRPO's vLLM options, refused where they cannot run."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from conftest import CHAT_ROWS, PROMPT_ROWS, TASK_ROWS, local_config

from evsys_local.backend import LocalBackendConfig
from evsys_local.common import trainer_args
from evsys_sdk.base.errors import ConfigError, EvsysError
from evsys_sdk.loading.yaml_loader import check_config, load_yaml
from evsys_sdk.run.runner import run_experiment

pytestmark = pytest.mark.timeout(300)


def problem(tmp_path: Path, params: dict[str, Any]) -> str:
    """The one line check_config prints for these backend params (from a YAML file, so it is located)."""
    cfg = local_config(tmp_path, "sft", {"max_steps": 1}, CHAT_ROWS)
    cfg["run"]["backend"]["params"] = params
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        check_config(load_yaml(path))
    [line] = info.value.problems
    assert line.startswith(f"{path}:") and "run.backend.params" in line, line
    return line


@pytest.mark.parametrize(
    ("params", "says"),
    [
        ({"num_processes": 0}, "greater than or equal to 1"),
        ({"strategy": "fsdp"}, "needs num_processes > 1"),
        ({"strategy": "fsdp", "num_processes": 2, "device": "cpu"}, "strategy: fsdp needs CUDA GPUs"),
        ({"strategy": "zero3"}, "'ddp' or 'fsdp'"),
        ({"mixed_precision": "fp16", "dtype": "float32", "device": "cpu"}, "needs a CUDA GPU and this device is cpu"),
        ({"mixed_precision": "fp16"}, "set dtype: float32"),
        ({"mixed_precision": "bf16", "dtype": "float16"}, "set dtype: float32"),
        ({"quantization": "4bit", "device": "cpu"}, "quantization: 4bit needs a CUDA GPU"),
        ({"quantization": "16bit"}, "'none', '4bit' or '8bit'"),
    ],
)
def test_refusals_are_one_located_line_before_any_arm(tmp_path: Path, params: dict[str, Any], says: str) -> None:
    assert says in problem(tmp_path, params)


def test_quantization_without_cuda_says_what_to_install(tmp_path: Path) -> None:
    line = problem(tmp_path, {"quantization": "8bit", "device": "cpu"})
    assert "needs a CUDA GPU and this device is cpu" in line and "pip install bitsandbytes" in line
    if not torch.cuda.is_available():  # auto on a machine without CUDA says it looked
        assert "(auto found no CUDA)" in problem(tmp_path, {"quantization": "8bit"})


def test_defaults_are_one_process_in_the_weights_dtype() -> None:
    cfg = LocalBackendConfig()
    assert (cfg.num_processes, cfg.strategy, cfg.mixed_precision) == (1, "ddp", "no")
    assert (cfg.gradient_checkpointing, cfg.quantization) == (False, "none")
    schema = LocalBackendConfig.model_json_schema()["properties"]
    for key in ("num_processes", "strategy", "mixed_precision", "gradient_checkpointing", "quantization"):
        assert schema[key]["description"], key
    assert schema["num_processes"]["minimum"] == 1


def test_trainer_args_follow_the_backend() -> None:
    from evsys_local.sft import LocalSFTConfig

    params = LocalSFTConfig(max_steps=1)
    cpu = {"device": "cpu", "dtype": "float32"}
    assert trainer_args(params, cpu, "out", 1) == trainer_args(params, {**cpu, "mixed_precision": "no"}, "out", 1)
    plain = trainer_args(params, cpu, "out", 1)
    assert (plain["bf16"], plain["fp16"], plain["activation_checkpointing"]) == (False, False, False)
    scaled = trainer_args(params, {**cpu, "mixed_precision": "bf16", "gradient_checkpointing": True}, "out", 1)
    assert (scaled["bf16"], scaled["fp16"], scaled["activation_checkpointing"]) == (True, False, True)
    cuda_bf16_weights = trainer_args(params, {"device": "cuda", "dtype": "bfloat16"}, "out", 1)
    assert cuda_bf16_weights["bf16"] is True  # today's behaviour on CUDA is unchanged


def test_sft_trains_with_bf16_autocast_and_gradient_checkpointing(tmp_path: Path) -> None:
    from transformers import TrainerCallback

    seen: dict[str, Any] = {}

    class Capture(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
            seen.update(bf16=args.bf16, fp16=args.fp16, checkpointing=model.is_activation_checkpointing)

    cfg = local_config(tmp_path, "sft", {"max_steps": 2, "batch_size": 4, "lora_rank": 4}, CHAT_ROWS)
    cfg["run"]["backend"]["params"] = {"device": "cpu", "mixed_precision": "bf16", "gradient_checkpointing": True}
    [result] = run_experiment(cfg, extra_context={"local_trainer_callbacks": [Capture()]})
    assert result.status == "completed", result.error
    assert seen == {"bf16": True, "fp16": False, "checkpointing": True}
    assert result.metrics["train/final_loss"] > 0


def test_sdft_refuses_what_its_own_loop_does_not_do(tmp_path: Path) -> None:
    cfg = local_config(tmp_path, "sdft", {"max_steps": 1}, PROMPT_ROWS)
    cfg["run"]["backend"]["params"] = {"gradient_checkpointing": True}
    [result] = run_experiment(cfg)
    assert result.status == "failed"
    assert "local_sdft does not support backend gradient_checkpointing yet" in (result.error or "")


def algorithm_problem(tmp_path: Path, algorithm: str, params: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    cfg = local_config(tmp_path, algorithm, params, rows)
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        check_config(load_yaml(path))
    [line] = info.value.problems
    assert line.startswith(f"{path}:") and "run.algorithm.params" in line, line
    return line


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_use_vllm_without_vllm_is_refused_before_any_arm(tmp_path: Path) -> None:
    line = algorithm_problem(tmp_path, "rl", {"use_vllm": True, "vllm_mode": "server"}, TASK_ROWS)
    assert "use_vllm: true needs vLLM, which is not installed: pip install vllm" in line


def test_vllm_options_validate_and_reach_grpo(tmp_path: Path) -> None:
    from trl import GRPOConfig

    from evsys_local.rl import LocalRLConfig

    assert "only apply with use_vllm: true" in algorithm_problem(tmp_path, "rl", {"vllm_mode": "server"}, TASK_ROWS)
    with pytest.raises(ValueError, match="less than or equal to 65535"):
        LocalRLConfig(vllm_server_port=70000)
    with pytest.raises(ValueError, match="'colocate' or 'server'"):
        LocalRLConfig(vllm_mode="remote")
    # What GRPOConfig receives: every option is one of its own fields, with its own defaults when unset.
    args = LocalRLConfig().vllm_args()
    grpo = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none")
    assert args == {key: getattr(grpo, key) for key in args}
    chosen = LocalRLConfig.model_construct(use_vllm=True, vllm_mode="server", vllm_server_port=8001).vllm_args()
    built = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False, report_to="none", **chosen)
    assert (built.use_vllm, built.vllm_mode, built.vllm_server_port) == (True, "server", 8001)


def test_qlora_loads_through_bitsandbytes_and_trains_adapters_only() -> None:
    from transformers import BitsAndBytesConfig

    from evsys_local.checkpoints import quantization_config
    from evsys_local.common import peft_config
    from evsys_local.sft import LocalSFTConfig

    nf4 = quantization_config("4bit", torch.bfloat16)
    assert isinstance(nf4, BitsAndBytesConfig) and nf4.load_in_4bit and nf4.bnb_4bit_quant_type == "nf4"
    assert nf4.bnb_4bit_use_double_quant and nf4.bnb_4bit_compute_dtype == torch.bfloat16
    assert quantization_config("8bit", torch.bfloat16).load_in_8bit
    full = LocalSFTConfig(max_steps=1, lora_rank=0)
    with pytest.raises(EvsysError, match="set lora_rank > 0"):
        peft_config(full, full, {"quantization": "4bit"})
    lora = LocalSFTConfig(max_steps=1, lora_rank=4)
    assert peft_config(lora, lora, {"quantization": "4bit"}).r == 4


def test_fsdp_wraps_each_decoder_layer(tiny_model: Path, tmp_path: Path) -> None:
    """The wrap policy TRL's trainer hands accelerate on a CUDA node (CPU refuses fsdp before any arm)."""
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig

    from evsys_local.sft import LocalSFTConfig

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    handles = {"device": "cpu", "strategy": "fsdp", "num_processes": 2, "model": model}
    args = trainer_args(LocalSFTConfig(max_steps=1), handles, str(tmp_path), 1)
    config = SFTConfig(**args).fsdp_config
    assert config["auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    assert config["transformer_layer_cls_to_wrap"] == ["LlamaDecoderLayer"]
    assert (config["version"], config["state_dict_type"]) == (2, "FULL_STATE_DICT")
    assert "fsdp" not in trainer_args(LocalSFTConfig(max_steps=1), {**handles, "num_processes": 1}, "out", 1)
