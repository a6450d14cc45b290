"""Inference client ``local``: a model on this machine, greedy at temperature 0, batched with left padding."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field

from evsys_sdk.spec.config import RunConfig, StrictModel
from evsys_sdk.spec.params import FIXED
from evsys_sdk.spec.protocols import InferenceClient, RunResult


class LocalInferenceConfig(StrictModel):
    model_name: str = Field(description="a local model dir, a hub id, or a checkpoint dir of a local run")
    adapter_path: str | None = Field(
        default=None, description="a LoRA adapter dir loaded on top of model_name", json_schema_extra=FIXED
    )
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="weights' dtype (auto: bfloat16 where supported, else float32)"
    )
    device: str = Field(
        default="auto", description="torch device (auto: cuda, then mps, else cpu)", json_schema_extra=FIXED
    )
    # Prompts are user turns rendered with the tokenizer's chat template (when it has one).
    chat_template: bool = Field(
        default=True, description="render the prompt as a user turn of the tokenizer's chat template"
    )
    system_prompt: str | None = Field(default=None, description="a system message before each prompt")
    batch_size: int = Field(default=8, ge=1, description="prompts generated together in generate_batch")
    trust_remote_code: bool = Field(
        default=False, description="run Python shipped with the model repository", json_schema_extra=FIXED
    )


class LocalInference:
    name: ClassVar[str] = "local"
    Config = LocalInferenceConfig

    def __init__(self, **params: Any) -> None:
        self.config = self.Config(**params)
        from evsys_local._env import require_stack, resolve_device, resolve_dtype

        require_stack()
        from evsys_local.backend import load_tokenizer
        from evsys_local.checkpoints import is_checkpoint, lineage, load_causal_lm, merge_adapters

        device = resolve_device(self.config.device)
        dtype = resolve_dtype(self.config.dtype, device)
        source = self.config.model_name
        base, adapters = lineage(source) if is_checkpoint(source) else (source, [])
        if self.config.adapter_path:
            adapters = [*adapters, *lineage(self.config.adapter_path, base)[1]]
        model = load_causal_lm(base, dtype=dtype, device=device, trust_remote_code=self.config.trust_remote_code)
        self._model = merge_adapters(model, adapters).eval()
        self._tokenizer = load_tokenizer(base, trust_remote_code=self.config.trust_remote_code)
        self._tokenizer.padding_side = "left"
        self._init_queue()

    def _init_queue(self) -> None:
        self._model_lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Request] = []

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, **params: Any) -> LocalInference:
        """Wrap a live model (in-loop validation) without loading anything."""
        self = cls.__new__(cls)
        self.config = cls.Config(model_name=str(getattr(model, "name_or_path", "live")), **params)
        self._model, self._tokenizer = model, tokenizer
        self._init_queue()
        return self

    def render(self, prompt: str) -> str:
        tok = self._tokenizer
        if not self.config.chat_template or not getattr(tok, "chat_template", None):
            return prompt
        messages = [{"role": "system", "content": self.config.system_prompt}] if self.config.system_prompt else []
        messages.append({"role": "user", "content": prompt})
        text: str = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return text

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        """Thread-safe. Concurrent callers (the eval engine's threads) are coalesced: whoever holds the
        model runs every pending prompt with the same sampling params in one batch."""
        mine = _Request(prompt, (max_tokens, temperature, tuple(stop or ())))
        with self._queue_lock:
            self._queue.append(mine)
        with self._model_lock:
            if mine.result is None:
                with self._queue_lock:
                    batch = [r for r in self._queue if r.key == mine.key][: self.config.batch_size]
                    if mine not in batch:
                        batch[-1:] = [mine]
                    self._queue = [r for r in self._queue if r not in batch]
                texts = self.generate_batch(
                    [r.prompt for r in batch], max_tokens=max_tokens, temperature=temperature, stop=stop
                )
                for r, text in zip(batch, texts, strict=True):
                    r.result = text
        assert mine.result is not None
        return mine.result

    def generate_batch(
        self, prompts: list[str], *, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> list[str]:
        out: list[str] = []
        size = self.config.batch_size
        for i in range(0, len(prompts), size):
            out.extend(self._generate_chunk(prompts[i : i + size], max_tokens, temperature, stop or []))
        return out

    def _generate_chunk(self, prompts: list[str], max_tokens: int, temperature: float, stop: list[str]) -> list[str]:
        import torch

        tok, model = self._tokenizer, self._model
        tok.padding_side = "left"  # generation continues at the right edge of every row
        enc = tok([self.render(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(model.device) for k, v in enc.items()}
        sampling: dict[str, Any] = (
            {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if temperature > 0
            else {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        )
        stopper = _stop_on_strings(tok, stop, enc["input_ids"].shape[1]) if stop else None
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                ids = model.generate(
                    **enc,
                    max_new_tokens=max(1, max_tokens),
                    pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                    stopping_criteria=[stopper] if stopper else None,
                    **sampling,
                )
        finally:
            model.train(was_training)
        texts = tok.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        return [cut_at_stop(t, stop) for t in texts]


@dataclass(eq=False)
class _Request:
    prompt: str
    key: tuple[Any, ...]
    result: str | None = None


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the earliest stop string."""
    cut = min((text.index(s) for s in stop if s and s in text), default=len(text))
    return text[:cut]


def _stop_on_strings(tokenizer: Any, stop: list[str], prompt_len: int) -> Any:
    """A stopping criterion ending each row once its new text holds a stop string (rows finish
    independently); the text is cut at the stop string afterwards."""
    import torch
    from transformers import StoppingCriteria

    wanted = [s for s in stop if s]

    class StopOnStrings(StoppingCriteria):  # type: ignore[misc]
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            texts = tokenizer.batch_decode(input_ids[:, prompt_len:], skip_special_tokens=True)
            return torch.tensor([any(s in t for s in wanted) for t in texts], device=input_ids.device)

    return StopOnStrings()


def local_inference_factory(run_result: RunResult, run_config: RunConfig) -> InferenceClient:
    """Serves a finished local arm from its ``final_checkpoint`` (eval.inference params of kind local apply)."""
    from evsys_sdk.base.errors import EvsysError

    checkpoint = run_result.artifacts.get("final_checkpoint")
    if not checkpoint:
        raise EvsysError(f"run '{run_result.run_id}' reported no final_checkpoint to serve")
    spec = run_config.eval.inference
    params = dict(spec.params) if spec is not None and spec.kind == "local" else {}
    params.pop("adapter_path", None)
    params["model_name"] = checkpoint
    return LocalInference(**params)
