"""The narrow client seam: the only Tinker surface the algorithms and inference touch.

``tinker.TrainingClient`` and ``tinker.SamplingClient`` satisfy the client protocols as they are; a
``Connector`` creates them (``ServiceConnector`` from a ``tinker.ServiceClient``, or the offline
``evsys_tinker.testing.FakeTinker``). Nothing else in this package sees a ``ServiceClient``.
This module imports tinker only inside functions (registered classes import it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from evsys_sdk.base.errors import EvsysError

if TYPE_CHECKING:
    import tinker

    from evsys_tinker.config import ConnectionParams

T_co = TypeVar("T_co", covariant=True)


class Future(Protocol[T_co]):
    def result(self, timeout: float | None = None) -> T_co: ...


class Tokenizer(Protocol):
    """The part of a Hugging Face tokenizer the algorithms use."""

    eos_token_id: Any

    def encode(self, text: str, add_special_tokens: bool = ...) -> list[int]: ...
    def decode(self, token_ids: list[int], skip_special_tokens: bool = ...) -> str: ...
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...
    def convert_tokens_to_ids(self, tokens: Any) -> Any: ...


class SamplingClient(Protocol):
    def sample(
        self,
        prompt: tinker.ModelInput,
        num_samples: int,
        sampling_params: tinker.SamplingParams,
        include_prompt_logprobs: bool = False,
        topk_prompt_logprobs: int = 0,
    ) -> Future[tinker.SampleResponse]: ...

    def get_tokenizer(self) -> Any: ...
    def compute_logprobs(
        self, prompt: tinker.ModelInput, prompt_logprobs_last_n: int | None = None
    ) -> Future[list[float | None]]: ...


class TrainingClient(Protocol):
    def forward(
        self, data: list[tinker.Datum], loss_fn: Any, loss_fn_config: Any = None
    ) -> Future[tinker.ForwardBackwardOutput]: ...
    def forward_backward(
        self, data: list[tinker.Datum], loss_fn: Any, loss_fn_config: Any = None
    ) -> Future[tinker.ForwardBackwardOutput]: ...
    def optim_step(self, optim_params: Any = None) -> Future[Any]: ...
    def save_state(self, name: str, ttl_seconds: int | None = None) -> Future[Any]: ...
    def save_weights_for_sampler(self, name: str, ttl_seconds: int | None = None) -> Future[Any]: ...
    def save_weights_and_get_sampling_client(self) -> Future[Any]: ...
    def get_tokenizer(self) -> Any: ...


class Connector(Protocol):
    """Creates clients. ``close`` ends the session (the service's "finish" call)."""

    def training_client(self, base_model: str, *, rank: int, seed: int | None) -> TrainingClient: ...
    def training_client_from_state(self, path: str, *, with_optimizer: bool) -> TrainingClient: ...
    def sampling_client(self, *, model_path: str | None = None, base_model: str | None = None) -> SamplingClient: ...
    def close(self, status: str = "success") -> None: ...


class ServiceConnector:
    """The hosted service through the official SDK (one ``tinker.ServiceClient`` session)."""

    def __init__(self, *, api_key: str, base_url: str | None) -> None:
        import tinker

        self.service = tinker.ServiceClient(api_key=api_key, base_url=base_url)

    def training_client(self, base_model: str, *, rank: int, seed: int | None) -> TrainingClient:
        client: TrainingClient = self.service.create_lora_training_client(base_model, rank=rank, seed=seed).result()
        return client

    def training_client_from_state(self, path: str, *, with_optimizer: bool) -> TrainingClient:
        create = (
            self.service.create_training_client_from_state_with_optimizer
            if with_optimizer
            else self.service.create_training_client_from_state
        )
        client: TrainingClient = create(path).result()
        return client

    def sampling_client(self, *, model_path: str | None = None, base_model: str | None = None) -> SamplingClient:
        client: SamplingClient = self.service.create_sampling_client(
            model_path=model_path, base_model=base_model
        ).result()
        return client

    def close(self, status: str = "success") -> None:
        self.service.close(cast(Any, status)).result()  # the SDK types status as a Literal


def emulator_dir(configured: str | None) -> Path:
    """Where the emulator keeps checkpoints: shared by runs, like the service's storage, so a continual
    stage or an inference client finds the checkpoints an earlier run saved."""
    where = configured or os.environ.get("EVSYS_TINKER_EMULATOR_DIR") or "~/.cache/evsys/tinker-emulator"
    return Path(where).expanduser()


def connect(params: ConnectionParams) -> Connector:
    """The connector ``params`` ask for; a missing API key is an error naming its env var."""
    if params.emulator:
        from evsys_tinker.testing import FakeTinker

        return FakeTinker(emulator_dir(params.emulator_dir))
    api_key = os.environ.get(params.api_key_env, "").strip()
    if not api_key:
        raise EvsysError(
            f"Tinker needs an API key: set the environment variable {params.api_key_env} "
            f"(export {params.api_key_env}=tml-...), or point backend.params.api_key_env at the variable "
            "holding it; to try the config offline first, set backend.params.emulator: true"
        )
    return ServiceConnector(api_key=api_key, base_url=params.base_url)
