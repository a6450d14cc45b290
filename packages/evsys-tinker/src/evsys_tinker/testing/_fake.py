"""``FakeTinker``: an offline emulator of the client seam, returning real ``tinker.types`` objects.

Checkpoints are ``tinker://<run>/weights/<name>`` (training state, optimizer included) and
``tinker://<run>/sampler_weights/<name>`` URIs backed by ``.npz`` files under one directory, so a later
run (a continual stage, a resumed run, an inference client) loads what an earlier one saved.
Faults are injected with ``fail_next(method, error)``; ``api_error(status, message)`` builds the SDK's
own exception for an HTTP status, as the service would raise it.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
import zlib
from collections import defaultdict
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

import httpx
import numpy as np
import tinker
from tinker import types
from tinker.lib.public_interfaces.api_future import AwaitableConcurrentFuture
from tinker.types.topk_logprobs import MASK_LOGPROB, TopkLogprobs

from evsys_tinker.testing._model import ToyLM
from evsys_tinker.testing._tokenizer import emulator_tokenizer

T = TypeVar("T")

# Effective learning rate = configured x this: LoRA learning rates (1e-5..1e-4) move a billion-parameter
# model a lot per step but a two-table toy model barely at all; scaled, a few steps show learning.
LR_SCALE = 100.0
DEFAULT_MAX_TOKENS = 64
_STATUS_ERRORS: dict[int, type[tinker.APIStatusError]] = {
    400: tinker.BadRequestError,
    401: tinker.AuthenticationError,
    403: tinker.PermissionDeniedError,
    404: tinker.NotFoundError,
    409: tinker.ConflictError,
    422: tinker.UnprocessableEntityError,
    429: tinker.RateLimitError,
}


def api_error(status: int, message: str) -> tinker.APIStatusError:
    """The exception the SDK raises when the service answers ``status`` with ``message``."""
    request = httpx.Request("POST", "https://tinker.invalid/api/v1/emulated")
    body = {"error": message}
    response = httpx.Response(status, json=body, request=request)
    cls = _STATUS_ERRORS.get(status, tinker.InternalServerError if status >= 500 else tinker.APIStatusError)
    return cls(f"Error code: {status} - {body}", response=response, body=body)


def _done(value: T) -> AwaitableConcurrentFuture[T]:
    future: Future[T] = Future()
    future.set_result(value)
    return AwaitableConcurrentFuture(future)


def _failed(error: BaseException) -> AwaitableConcurrentFuture[Any]:
    future: Future[Any] = Future()
    future.set_exception(error)
    return AwaitableConcurrentFuture(future)


def _as_array(value: Any) -> np.ndarray:
    return value.to_numpy() if isinstance(value, types.TensorData) else np.asarray(value)


class FakeTinker:
    """A ``Connector`` (see ``evsys_tinker.seam``) whose clients run a tiny numpy model in process."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()
        self.tokenizer = emulator_tokenizer()
        self.eos_ids = [int(self.tokenizer.convert_tokens_to_ids(t)) for t in ("<|im_end|>", "<|endoftext|>")]
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed: str | None = None
        self._faults: dict[str, list[BaseException]] = defaultdict(list)
        self._lock = threading.Lock()
        self._ids = itertools.count()

    # -- test controls --------------------------------------------------------------------------------

    def fail_next(self, method: str, error: BaseException) -> None:
        """The next call of ``method`` (e.g. ``forward_backward``, ``sample``, ``training_client``) fails."""
        self._faults[method].append(error)

    def _call(self, method: str, **info: Any) -> BaseException | None:
        with self._lock:
            self.calls.append((method, info))
            return self._faults[method].pop(0) if self._faults[method] else None

    def _raise_if_faulted(self, method: str, **info: Any) -> None:
        error = self._call(method, **info)
        if error is not None:
            raise error

    # -- Connector ------------------------------------------------------------------------------------

    def training_client(self, base_model: str, *, rank: int, seed: int | None) -> FakeTrainingClient:
        self._raise_if_faulted("training_client", base_model=base_model, rank=rank)
        model = ToyLM.base(base_model, len(self.tokenizer), self.eos_ids)
        return FakeTrainingClient(self, base_model, rank, model)

    def training_client_from_state(self, path: str, *, with_optimizer: bool) -> FakeTrainingClient:
        self._raise_if_faulted("training_client_from_state", path=path, with_optimizer=with_optimizer)
        meta, arrays = self._load(path, "training")
        model = ToyLM.from_arrays(arrays, with_optimizer=with_optimizer)
        return FakeTrainingClient(self, meta["base_model"], int(meta["rank"]), model)

    def sampling_client(self, *, model_path: str | None = None, base_model: str | None = None) -> FakeSamplingClient:
        self._raise_if_faulted("sampling_client", model_path=model_path, base_model=base_model)
        if model_path is not None:
            meta, arrays = self._load(model_path, "sampler")
            return FakeSamplingClient(self, meta["base_model"], ToyLM.from_arrays(arrays, with_optimizer=False))
        if base_model is None:
            raise api_error(400, "create_sampling_client needs model_path or base_model")
        return FakeSamplingClient(self, base_model, ToyLM.base(base_model, len(self.tokenizer), self.eos_ids))

    def close(self, status: str = "success") -> None:
        self.closed = status

    # -- checkpoint storage -------------------------------------------------------------------------

    def _save(self, run_id: str, kind: str, name: str, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
        folder = {"training": "weights", "sampler": "sampler_weights"}[kind]
        uri = f"tinker://{run_id}/{folder}/{name}"
        path = self.root / run_id / folder / name
        path.mkdir(parents=True, exist_ok=True)
        np.savez(path / "arrays.npz", **cast(dict[str, Any], arrays))
        (path / "meta.json").write_text(json.dumps({**meta, "path": uri}), encoding="utf-8")
        return uri

    def _load(self, uri: str, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        try:
            parsed = types.ParsedCheckpointTinkerPath.from_tinker_path(uri)
        except ValueError:
            raise api_error(400, f"Invalid tinker path: {uri}") from None
        if parsed.checkpoint_type != kind:
            raise api_error(400, f"{uri} is a {parsed.checkpoint_type} checkpoint, a {kind} checkpoint is needed")
        path = self.root / parsed.training_run_id / parsed.checkpoint_id  # checkpoint_id is "<folder>/<name>"
        if not (path / "meta.json").exists():
            raise api_error(404, f"Checkpoint not found: {uri}")
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
        with np.load(path / "arrays.npz") as data:
            arrays = {k: data[k] for k in data.files}
        return meta, arrays

    def exists(self, uri: str) -> bool:
        """Whether ``uri`` names a checkpoint this emulator saved."""
        try:
            parsed = types.ParsedCheckpointTinkerPath.from_tinker_path(uri)
        except ValueError:
            return False
        return bool((self.root / parsed.training_run_id / parsed.checkpoint_id / "meta.json").exists())


class FakeTrainingClient:
    def __init__(self, fake: FakeTinker, base_model: str, rank: int, model: ToyLM) -> None:
        self.fake = fake
        self.base_model = base_model
        self.rank = rank
        self.model = model
        self.run_id = f"emu-{uuid.uuid4().hex[:12]}"
        self.model_id = f"{self.run_id}:train:0"

    def get_tokenizer(self) -> Any:
        return self.fake.tokenizer

    def forward_backward(
        self, data: list[types.Datum], loss_fn: str, loss_fn_config: dict[str, Any] | None = None
    ) -> AwaitableConcurrentFuture[types.ForwardBackwardOutput]:
        return self._forward(data, loss_fn, loss_fn_config, backward=True)

    def forward(
        self, data: list[types.Datum], loss_fn: str, loss_fn_config: dict[str, Any] | None = None
    ) -> AwaitableConcurrentFuture[types.ForwardBackwardOutput]:
        return self._forward(data, loss_fn, loss_fn_config, backward=False)

    def _forward(
        self, data: list[types.Datum], loss_fn: str, config: dict[str, Any] | None, *, backward: bool
    ) -> AwaitableConcurrentFuture[types.ForwardBackwardOutput]:
        error = self.fake._call("forward_backward" if backward else "forward", loss_fn=loss_fn, n=len(data))
        if error is not None:
            return _failed(error)
        if not data:
            return _failed(api_error(400, "forward_backward needs at least one datum"))
        total = 0.0
        outputs = []
        for datum in data:
            tokens = np.asarray(datum.model_input.to_ints(), dtype=np.int64)
            inputs = {k: _as_array(v) for k, v in datum.loss_fn_inputs.items()}
            if len(inputs["target_tokens"]) != len(tokens):
                return _failed(api_error(400, "target_tokens must have one row per model_input token"))
            loss, logprobs = self.model.forward_backward(tokens, inputs, loss_fn, dict(config or {}), backward)
            total += loss
            outputs.append({"logprobs": types.TensorData.from_numpy(logprobs)})
        return _done(
            types.ForwardBackwardOutput(
                loss_fn_output_type="ArrayRecord", loss_fn_outputs=outputs, metrics={"loss:sum": total}
            )
        )

    def optim_step(self, optim_params: types.AdamParams | None = None, **kwargs: Any) -> AwaitableConcurrentFuture[Any]:
        adam = optim_params or kwargs.get("adam_params") or types.AdamParams()
        error = self.fake._call("optim_step", learning_rate=adam.learning_rate)
        if error is not None:
            return _failed(error)
        norm = self.model.optim_step(
            adam.learning_rate * LR_SCALE, adam.beta1, adam.beta2, adam.eps, adam.weight_decay, adam.grad_clip_norm
        )
        return _done(types.OptimStepResponse(metrics={"grad_norm": norm}))

    def _meta(self) -> dict[str, Any]:
        return {"base_model": self.base_model, "rank": self.rank, "adam_t": self.model.adam.t}

    def save_state(self, name: str, ttl_seconds: int | None = None, **_: Any) -> AwaitableConcurrentFuture[Any]:
        error = self.fake._call("save_state", name=name)
        if error is not None:
            return _failed(error)
        arrays = self.model.arrays(with_optimizer=True)
        uri = self.fake._save(self.run_id, "training", name, self._meta(), arrays)
        return _done(types.SaveWeightsResponse(path=uri))

    def save_weights_for_sampler(
        self, name: str, ttl_seconds: int | None = None, **_: Any
    ) -> AwaitableConcurrentFuture[Any]:
        error = self.fake._call("save_weights_for_sampler", name=name)
        if error is not None:
            return _failed(error)
        uri = self.fake._save(self.run_id, "sampler", name, self._meta(), self.model.arrays(with_optimizer=False))
        return _done(types.SaveWeightsForSamplerResponse(path=uri))

    def save_weights_and_get_sampling_client(self, **_: Any) -> AwaitableConcurrentFuture[Any]:
        error = self.fake._call("save_weights_and_get_sampling_client")
        if error is not None:
            return _failed(error)
        return _done(FakeSamplingClient(self.fake, self.base_model, self.model.snapshot()))


class FakeSamplingClient:
    def __init__(self, fake: FakeTinker, base_model: str, model: ToyLM) -> None:
        self.fake = fake
        self.base_model = base_model
        self.model = model
        self._counter = itertools.count()
        self._seed = zlib.crc32(base_model.encode())

    def get_tokenizer(self) -> Any:
        return self.fake.tokenizer

    def get_base_model(self) -> str:
        return self.base_model

    def sample(
        self,
        prompt: types.ModelInput,
        num_samples: int,
        sampling_params: types.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
        **_: Any,
    ) -> AwaitableConcurrentFuture[types.SampleResponse]:
        error = self.fake._call(
            "sample", num_samples=num_samples, topk_prompt_logprobs=topk_prompt_logprobs, base_model=self.base_model
        )
        if error is not None:
            return _failed(error)
        tokens = prompt.to_ints()
        if not tokens:
            return _failed(api_error(400, "the prompt is empty"))
        params = sampling_params
        seed = params.seed if params.seed is not None else self._seed + next(self._counter)
        rng = np.random.default_rng(seed)
        sequences = [self._generate(tokens, params, rng, f"emu-seq-{uuid.uuid4().hex[:8]}") for _ in range(num_samples)]
        prompt_lp: np.ndarray | None = None
        topk: TopkLogprobs | None = None
        if include_prompt_logprobs or topk_prompt_logprobs > 0:
            logp = self.model.log_probs(np.asarray(tokens, dtype=np.int64))
            targets = np.asarray(tokens[1:], dtype=np.int64)
            prompt_lp = np.concatenate([[np.nan], logp[np.arange(len(targets)), targets]]).astype(np.float32)
            if topk_prompt_logprobs > 0:
                k = min(topk_prompt_logprobs, self.model.vocab_size)
                # Row i is the distribution of prompt token i, i.e. the model's output at position i - 1.
                order = np.argsort(-logp[:-1], axis=1)[:, :k]
                ids = np.vstack([np.zeros((1, k), np.int64), order]).astype(np.int32)
                lps = np.vstack([np.full((1, k), MASK_LOGPROB), np.take_along_axis(logp[:-1], order, 1)])
                topk = TopkLogprobs(token_ids=ids, logprobs=lps.astype(np.float32))
        return _done(
            types.SampleResponse(
                sequences=sequences,
                prompt_logprobs_np=prompt_lp if include_prompt_logprobs else None,
                topk_prompt_logprobs_np=topk,
            )
        )

    def compute_logprobs(
        self, prompt: types.ModelInput, prompt_logprobs_last_n: int | None = None, **_: Any
    ) -> AwaitableConcurrentFuture[list[float | None]]:
        """Each prompt token's logprob given the tokens before it (None at 0); with
        ``prompt_logprobs_last_n`` only the last N are scored and earlier entries are None, as the SDK says."""
        error = self.fake._call("compute_logprobs", n=len(prompt.to_ints()), last_n=prompt_logprobs_last_n)
        if error is not None:
            return _failed(error)
        tokens = np.asarray(prompt.to_ints(), dtype=np.int64)
        last_n = prompt_logprobs_last_n
        if last_n is not None and not 1 <= last_n <= len(tokens) - 1:
            return _failed(api_error(400, f"prompt_logprobs_last_n must be in [1, {len(tokens) - 1}], got {last_n}"))
        logp = self.model.log_probs(tokens)
        first = 1 if last_n is None else len(tokens) - last_n
        values: list[float | None] = [None] * first + [float(logp[i - 1, tokens[i]]) for i in range(first, len(tokens))]
        return _done(values)

    def _generate(
        self, prompt: list[int], params: types.SamplingParams, rng: np.random.Generator, sequence_id: str
    ) -> types.SampledSequence:
        stop = params.stop
        stop_ids = set(self.fake.eos_ids) if stop is None else {s for s in stop if isinstance(s, int)}
        stop_strings = [s for s in stop or [] if isinstance(s, str)] if not isinstance(stop, str) else [stop]
        max_tokens = params.max_tokens if params.max_tokens is not None else DEFAULT_MAX_TOKENS
        context = list(prompt)
        out: list[int] = []
        logprobs: list[float] = []
        reason: Literal["stop", "length"] = "length"
        for _ in range(max_tokens):
            logits = self.model.next_logits(context).astype(np.float64)
            if not out and stop_ids:  # an assistant turn is never empty: the first token is not a stop
                logits[list(stop_ids)] = -np.inf
            logp = logits - logits.max()
            logp -= np.log(np.exp(logp).sum())
            if params.temperature <= 0:
                token = int(np.argmax(logp))
            else:
                scaled = logp / params.temperature
                p = np.exp(scaled - scaled.max())
                token = int(rng.choice(len(p), p=p / p.sum()))
            out.append(token)
            logprobs.append(float(logp[token]))
            context.append(token)
            if token in stop_ids or (stop_strings and any(s in self.fake.tokenizer.decode(out) for s in stop_strings)):
                reason = "stop"
                break
        return types.SampledSequence(
            stop_reason=reason,
            sequence_id=sequence_id,
            tokens_np=np.asarray(out, dtype=np.int32),
            logprobs_np=np.asarray(logprobs, dtype=np.float32),
        )
