"""Inference ``tinker``: generate with a Tinker sampler (a trained checkpoint, or a base model).

The registered class imports tinker only when built; ``from_run_result`` serves a finished tinker arm
from its final sampler checkpoint and is the default inference factory for backend tinker.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from evsys_sdk.base.errors import EvsysError
from evsys_tinker.config import TinkerInferenceConfig

if TYPE_CHECKING:
    from evsys_sdk.spec.config import RunConfig
    from evsys_sdk.spec.protocols import RunResult
    from evsys_tinker.seam import SamplingClient, Tokenizer


def _cut(text: str, stop: list[str] | None) -> str:
    """Text up to the first stop string: stops are applied here, since the sampler stops on tokens."""
    cut = len(text)
    for s in stop or []:
        if s and s in text:
            cut = min(cut, text.index(s))
    return text[:cut]


class SamplerInference:
    """Generation over any sampling client of the seam (also the in-loop validation client)."""

    name: ClassVar[str] = "tinker_sampler"

    def __init__(
        self,
        sampler: SamplingClient,
        tokenizer: Tokenizer,
        *,
        system_prompt: str | None = None,
        chat_template: bool = True,
        enable_thinking: bool | None = None,
    ) -> None:
        from evsys_tinker import _chat

        self.sampler = sampler
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.chat_template = chat_template
        self.enable_thinking = enable_thinking
        self.stop_tokens = _chat.stop_tokens(tokenizer)

    def _prompt(self, prompt: str) -> Any:
        from tinker import types

        from evsys_tinker import _chat

        if self.chat_template:
            messages = _chat.user_prompt(self.system_prompt, prompt)
            tokens = _chat.prompt_tokens(self.tokenizer, messages, enable_thinking=self.enable_thinking)
        else:
            tokens = list(self.tokenizer.encode(prompt, add_special_tokens=False))
        return types.ModelInput.from_ints(tokens)

    def _submit(self, prompt: str, max_tokens: int, temperature: float) -> Any:
        from tinker import types

        params = types.SamplingParams(max_tokens=max_tokens, temperature=temperature, stop=self.stop_tokens)
        return self.sampler.sample(self._prompt(prompt), 1, params)

    def _text(self, future: Any, stop: list[str] | None) -> str:
        from evsys_tinker._loop import service_call

        response = service_call("sample", future.result)
        tokens = [t for t in response.sequences[0].tokens if t not in self.stop_tokens]
        return _cut(str(self.tokenizer.decode(tokens, skip_special_tokens=True)), stop)

    def generate(
        self, *, prompt: str, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> str:
        return self._text(self._submit(prompt, max_tokens, temperature), stop)

    def generate_batch(
        self, prompts: list[str], *, max_tokens: int = 256, temperature: float = 0.0, stop: list[str] | None = None
    ) -> list[str]:
        """Submits every prompt, then collects the answers in order (the service works on them together)."""
        futures = [self._submit(p, max_tokens, temperature) for p in prompts]
        return [self._text(f, stop) for f in futures]


class TinkerInference(SamplerInference):
    """Registered as inference ``tinker``."""

    name: ClassVar[str] = "tinker"
    Config: ClassVar[type[TinkerInferenceConfig]] = TinkerInferenceConfig

    def __init__(self, **params: Any) -> None:
        from evsys_tinker._loop import service_call
        from evsys_tinker.seam import connect

        self.config = self.Config(**params)
        self.connector = connect(self.config)
        cfg = self.config
        sampler = service_call(
            "create_sampling_client",
            lambda: self.connector.sampling_client(
                model_path=cfg.checkpoint_path, base_model=None if cfg.checkpoint_path else cfg.model_name
            ),
        )
        super().__init__(
            sampler,
            sampler.get_tokenizer(),
            system_prompt=cfg.system_prompt,
            chat_template=cfg.chat_template,
            enable_thinking=cfg.enable_thinking,
        )

    @classmethod
    def from_run_result(cls, run_result: RunResult, run_config: RunConfig, **overrides: Any) -> TinkerInference:
        """A client on the arm's final sampler checkpoint (from its artifacts, else its run dir's manifest)."""
        from evsys_tinker._loop import read_manifest

        path = run_result.artifacts.get("checkpoint-final") or run_result.artifacts.get("final_checkpoint")
        run_dir = run_result.artifacts.get("run_dir")
        if not path and run_dir:
            finals = [r for r in read_manifest(Path(run_dir)) if r.get("final")]
            path = finals[-1]["sampler_path"] if finals else None
        if not path:
            raise EvsysError(
                f"run '{run_result.run_id}' has no final Tinker sampler checkpoint (artifact 'checkpoint-final' "
                "or a final entry in checkpoints.jsonl); did its training complete?"
            )
        backend = run_config.backend.params if run_config.backend.kind == "tinker" else {}
        connection = {k: v for k, v in backend.items() if k in TinkerInferenceConfig.model_fields}
        params = {"model_name": run_config.model.name, "checkpoint_path": path, **connection}
        spec = run_config.eval.inference
        if spec is not None and spec.kind == cls.name:
            params.update({k: v for k, v in spec.params.items() if k not in ("checkpoint_path", "model_name")})
        return cls(**{**params, **overrides})


def inference_factory(run_result: RunResult, run_config: RunConfig) -> TinkerInference:
    return TinkerInference.from_run_result(run_result, run_config)
