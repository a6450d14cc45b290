"""A loopback fake of the Tinker HTTP endpoints the SDK uses (as tinker 0.38 sends them), computing with the
emulator's model, so the real ``tinker`` SDK can be driven end to end without a network.

The wire format (JSON futures, protobuf for forward_backward and sampling) is the SDK's own; this fake
exists to catch SDK upgrades that break evsys-tinker, so it decodes and encodes with the SDK's pb2.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
from tinker import types
from tinker.proto import tinker_public_pb2 as pb

from evsys_tinker.testing import FakeTinker
from evsys_tinker.testing._fake import FakeSamplingClient, FakeTrainingClient

_DTYPES = {pb.DTYPE_FLOAT32: np.float32, pb.DTYPE_INT64: np.int64, pb.DTYPE_INT32: np.int32}


def _tensor(msg: Any) -> np.ndarray:
    return np.frombuffer(msg.dense, dtype=_DTYPES[msg.dtype]).reshape(list(msg.shape))


def decode_forward_backward(body: bytes) -> tuple[str, str, list[types.Datum], bool]:
    """(model id, loss fn, data, forward only) of a protobuf /forward_backward request."""
    request = pb.ForwardBackwardRequest()
    request.ParseFromString(body)
    data = []
    for datum in request.data:
        tokens = [int(t) for c in datum.model_input for t in np.frombuffer(c.encoded_text.tokens, dtype=np.int32)]
        inputs = {k: types.TensorData.from_numpy(_tensor(v)) for k, v in datum.loss_fn_inputs.items()}
        data.append(types.Datum(model_input=types.ModelInput.from_ints(tokens), loss_fn_inputs=inputs))
    return request.model_id, request.loss_fn, data, request.forward_only


def encode_forward_backward(output: types.ForwardBackwardOutput) -> bytes:
    arrays = [np.asarray(o["logprobs"].to_numpy(), dtype=np.float32) for o in output.loss_fn_outputs]
    offsets = np.cumsum([0] + [a.nbytes for a in arrays]).astype(np.int64)
    record = pb.ArrayRecord(num_datums=len(arrays))
    field = record.fields["logprobs"]
    field.data = b"".join(a.tobytes() for a in arrays)
    field.offsets = offsets.tobytes()
    field.dtype = pb.DTYPE_FLOAT32
    msg = pb.ForwardBackwardOutput(loss_fn_output_type=output.loss_fn_output_type)
    msg.loss_fn_outputs.append(record)
    for key, value in output.metrics.items():
        msg.metrics[key] = value
    return bytes(msg.SerializeToString())


def encode_sample(response: types.SampleResponse, prompt_logprobs: list[float | None] | None = None) -> bytes:
    msg = pb.SampleResponse()
    if prompt_logprobs is not None:  # unscored positions travel as NaN
        values = [np.nan if v is None else v for v in prompt_logprobs]
        msg.prompt_logprobs = np.asarray(values, dtype=np.float32).tobytes()
    for seq in response.sequences:
        out = msg.sequences.add()
        out.stop_reason = pb.STOP_REASON_STOP if seq.stop_reason == "stop" else pb.STOP_REASON_LENGTH
        out.tokens = np.asarray(seq.tokens, dtype=np.int32).tobytes()
        out.logprobs = np.asarray(seq.logprobs or [], dtype=np.float32).tobytes()
    return bytes(msg.SerializeToString())


class FakeTinkerServer:
    """Serves on 127.0.0.1; ``fail`` maps an endpoint name to (status, message) for its next call."""

    def __init__(self, fake: FakeTinker) -> None:
        self.fake = fake
        self.requests: list[str] = []
        self.fail: dict[str, tuple[int, str]] = {}
        self._ids = itertools.count(1)
        self._results: dict[str, tuple[str, Any]] = {}
        self._models: dict[str, FakeTrainingClient] = {}
        self._samplers: dict[str, FakeSamplingClient] = {}
        self._lock = threading.Lock()

    def _future(self, kind: str, value: Any) -> dict[str, Any]:
        request_id = f"req-{next(self._ids)}"
        self._results[request_id] = (kind, value)
        return {"request_id": request_id}

    def _new_model(self, client: FakeTrainingClient, model_id: str) -> dict[str, Any]:
        self._models[model_id] = client
        return self._future("json", {"model_id": model_id})

    def handle(self, path: str, body: bytes) -> tuple[int, str, bytes]:
        """(status, content type, body) for one request."""
        name = path.removeprefix("/api/v1/")
        self.requests.append(name)
        if name in self.fail:
            status, message = self.fail.pop(name)
            return status, "application/json", json.dumps({"error": message, "detail": message}).encode()
        if name == "forward_backward":
            model_id, loss_fn, data, forward_only = decode_forward_backward(body)
            client = self._models[model_id]
            output = (client.forward if forward_only else client.forward_backward)(data, loss_fn).result()
            return self._json(self._future("proto", encode_forward_backward(output)))
        payload: dict[str, Any] = json.loads(body) if body else {}
        with self._lock:
            return self._json_route(name, payload)

    def _json(self, value: Any) -> tuple[int, str, bytes]:
        return 200, "application/json", json.dumps(value).encode()

    def _json_route(self, name: str, req: dict[str, Any]) -> tuple[int, str, bytes]:
        if name == "client/config":
            return self._json({"pjwt_auth_enabled": False, "use_pyqwest_transport": False})
        if name == "create_session":
            return self._json({"session_id": "sess", "type": "create_session"})
        if name in ("session_heartbeat", "telemetry") or name.startswith("sessions/"):
            return self._json({})
        if name == "create_model":
            rank = (req.get("lora_config") or {}).get("rank", 8)
            client = self.fake.training_client(req["base_model"], rank=rank, seed=None)
            return self._json(self._new_model(client, f"{req['session_id']}:train:{req['model_seq_id']}"))
        if name == "get_info":
            client = self._models[req["model_id"]]
            return self._json(
                {
                    "model_id": req["model_id"],
                    "model_data": {"model_name": client.base_model, "tokenizer_id": "emulator"},
                    "lora_rank": client.rank,
                    "is_lora": True,
                }
            )
        if name == "optim_step":
            adam = types.AdamParams(**req["adam_params"])
            return self._json(
                self._future("json", {"metrics": self._models[req["model_id"]].optim_step(adam).result().metrics})
            )
        if name == "save_weights_for_sampler" and not req.get("path"):  # an ephemeral sampler snapshot
            sampler_id = f"sampler-{next(self._ids)}"
            self._samplers[sampler_id] = self._models[req["model_id"]].save_weights_and_get_sampling_client().result()
            return self._json(self._future("json", {"sampling_session_id": sampler_id}))
        if name in ("save_weights", "save_weights_for_sampler"):
            client = self._models[req["model_id"]]
            save = client.save_state if name == "save_weights" else client.save_weights_for_sampler
            return self._json(self._future("json", {"path": save(req["path"]).result().path}))
        if name == "load_weights":
            model_id = req.get("model_id") or f"{req['session_id']}:train:{req['model_seq_id']}"
            client = self.fake.training_client_from_state(req["path"], with_optimizer=bool(req.get("optimizer")))
            self._models[model_id] = client
            return self._json(self._future("json", {"path": req["path"], "model_id": model_id}))
        if name == "create_sampling_session":
            sampler_id = f"sampler-{next(self._ids)}"
            path, base = req.get("model_path"), req.get("base_model")
            self._samplers[sampler_id] = self.fake.sampling_client(model_path=path, base_model=None if path else base)
            return self._json({"sampling_session_id": sampler_id})
        if name.startswith("samplers/"):
            sampler = self._samplers[name.split("/", 1)[1]]
            return self._json({"sampler_id": name, "base_model": sampler.base_model, "model_path": None})
        if name == "asample":
            sampler = self._samplers[req["sampling_session_id"]]
            tokens = [t for chunk in req["prompt"]["chunks"] for t in chunk["tokens"]]
            params = types.SamplingParams(**req["sampling_params"])
            prompt = types.ModelInput.from_ints(tokens)
            response = sampler.sample(prompt, req["num_samples"], params).result()
            scored = None
            if req.get("prompt_logprobs"):  # compute_logprobs: the prompt's own logprobs, last N if asked
                scored = sampler.compute_logprobs(prompt, req.get("prompt_logprobs_last_n")).result()
            ids = [f"seq-{next(self._ids)}" for _ in response.sequences]
            return self._json({**self._future("proto", encode_sample(response, scored)), "sample_sequence_ids": ids})
        if name == "retrieve_future":
            kind, value = self._results[req["request_id"]]
            if kind == "proto":
                return 200, "application/x-protobuf", value
            return self._json(value)
        return 404, "application/json", json.dumps({"error": f"not faked: {name}"}).encode()


@contextmanager
def serve(fake: FakeTinker) -> Iterator[tuple[str, FakeTinkerServer]]:
    state = FakeTinkerServer(fake)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _reply(self, body: bytes) -> None:
            try:
                status, content_type, out = state.handle(self.path.split("?", 1)[0], body)
            except Exception as exc:  # a 4xx, not a 5xx: the SDK would retry a 5xx for minutes
                status, content_type = 400, "application/json"
                out = json.dumps({"error": f"fake server: {type(exc).__name__}: {exc}"}).encode()
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if self.headers.get("content-encoding") == "zstd":
                import zstandard

                body = zstandard.ZstdDecompressor().decompress(body)
            self._reply(body)

        def do_GET(self) -> None:
            self._reply(b"")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
