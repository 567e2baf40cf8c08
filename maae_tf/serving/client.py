"""Client for an exported maae_tf model served by TF Serving (gRPC, or REST).

Command line:

    python -m maae_tf.serving.client --server=HOST:8500 --model=mouth_open --delta=3 in.jpg -o out.jpg
    python -m maae_tf.serving.client --server=HOST:8500 --model=face_edit --delta=3,-2 a.jpg b.png -o edited/
    python -m maae_tf.serving.client --server=HOST:8500 --model=mouth_open --status
    python -m maae_tf.serving.client --rest=http://HOST:8501 --model=mouth_open --delta=3 in.jpg -o out.jpg

Python:

    from maae_tf.serving.client import Client
    edited = Client("localhost:8500", "mouth_open").edit(images_uint8, 3.0)

`images` are face crops framed like the training data (uint8 RGB, [H, W, 3] or [N, H, W, 3]; any
size, the model resizes); `delta` is a number, one per image, or for a model of K attributes
[K] or [N, K] (column order: `Client.metadata()["attributes"]`). Calls have a deadline
(`timeout`), are retried with exponential backoff while the server is UNAVAILABLE, and fail with
`ServingError` whose message says what to check (model name, version, the request).
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request

import numpy as np

from maae_tf.files import read_image, write_image

RETRYABLE = ("UNAVAILABLE",)
HINTS = {
    "NOT_FOUND": "check --model/--version against the server's model config (--status lists versions)",
    "INVALID_ARGUMENT": "the request does not fit the model's signature (saved_model_cli show --all)",
    "FAILED_PRECONDITION": "the signature name is not in the model (saved_model_cli show --all)",
    "UNAVAILABLE": "is the server running and reachable at that address?",
    "DEADLINE_EXCEEDED": "the server did not answer in time; raise --timeout or send fewer images",
}


class ServingError(RuntimeError):
    """A failed request: `code` is the gRPC status name (e.g. "NOT_FOUND"), `details` the server's
    own message; str() adds where it went and what to check."""

    def __init__(self, code: str, details: str, where: str):
        self.code, self.details, self.where = code, details, where
        hint = HINTS.get(code)
        super().__init__(f"{code} from {where}: {details}" + (f" ({hint})" if hint else ""))


def as_batch(images) -> np.ndarray:
    """uint8 [N, H, W, 3] from [H, W, 3] or [N, H, W, 3]; anything else is a ValueError."""
    x = np.asarray(images)
    if x.dtype != np.uint8:
        raise ValueError(f"images must be uint8 RGB, got {x.dtype}")
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or 0 in x.shape:
        raise ValueError(f"images must be [H, W, 3] or [N, H, W, 3] with N, H, W > 0, got shape {x.shape}")
    return x


def as_delta(delta, n: int, k: int = 1) -> np.ndarray:
    """float32 δ for N images and a model of K attributes, always with the batch dimension first
    ([N] for K = 1, [N, K] otherwise), as TF Serving's request batching needs. K = 1 takes a
    number or [N]; K > 1 a number (every attribute), [K] (the same edit for each image) or [N, K]."""
    d = np.asarray(delta, dtype=np.float32)
    if not np.all(np.isfinite(d)):
        raise ValueError(f"delta must be finite, got {delta}")
    if k == 1:
        if d.ndim > 1 or d.size not in (1, n):
            raise ValueError(f"delta must be a number or one per image ({n}), got shape {d.shape}")
        return np.broadcast_to(d.reshape(-1), (n,)).copy()
    if d.ndim == 0:
        return np.full((n, k), d, np.float32)
    if d.ndim == 1 and d.size == k:
        return np.broadcast_to(d, (n, k)).copy()
    if d.shape != (n, k):
        raise ValueError(f"delta must be a number, [{k}] or [{n}, {k}] for {n} images and {k} attributes, "
                         f"got shape {d.shape}")
    return d


class _Base:
    """What gRPC and REST clients share: the high-level calls over `predict`."""

    def edit(self, images, delta, signature: str = "serving_default") -> np.ndarray:
        """The edited images (uint8, the input's size). `signature="edit_detail"` keeps the input's
        resolution and gives it back unchanged at δ = 0."""
        x = as_batch(images)
        d = as_delta(delta, len(x), self.num_attributes())
        out = self.predict({"images": x, "delta": d}, signature=signature)["images"]
        return out if np.ndim(images) == 4 else out[0]

    _k: int | None = None

    def num_attributes(self) -> int:
        """K, read once from the model's metadata."""
        if self._k is None:
            self._k = len(self.metadata()["attributes"])
        return self._k

    def metadata(self) -> dict:
        """The `metadata` signature: attributes (δ column order), delta_max, image_size, crop, steps."""
        out = self.predict({}, signature="metadata")
        return {"attributes": [a.decode() if isinstance(a, bytes) else a for a in np.ravel(out["attributes"])],
                "delta_max": np.ravel(out["delta_max"]).tolist(), "image_size": int(out["image_size"]),
                "crop": np.ravel(out["crop"]).tolist(), "steps": np.ravel(out["steps"]).tolist()}


class Client(_Base):
    """gRPC client of TF Serving's PredictionService / ModelService for one model."""

    def __init__(self, server: str, model: str, version: int | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, max_message_bytes: int = 256 << 20,
                 label: str | None = None):
        import grpc
        from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

        if version is not None and label is not None:
            raise ValueError("give a version or a version label, not both")
        self.server, self.model, self.version, self.label = server, model, version, label
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._grpc = grpc
        self._channel = grpc.insecure_channel(server, options=[
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes)])
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _spec(self, spec, signature: str | None = None):
        spec.name = self.model
        if self.version is not None:
            spec.version.value = int(self.version)
        if self.label is not None:
            spec.version_label = self.label
        if signature is not None:
            spec.signature_name = signature

    def _call(self, method, request):
        """One RPC with a deadline, retried with exponential backoff while UNAVAILABLE."""
        for attempt in range(self.retries + 1):
            try:
                return method(request, timeout=self.timeout)
            except self._grpc.RpcError as e:
                code = e.code().name
                if code in RETRYABLE and attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                where = f"{self.server} (model {self.model!r}" + (
                    f", version {self.version})" if self.version is not None
                    else f", label {self.label!r})" if self.label else ")")
                if code in RETRYABLE:
                    where += f" after {self.retries + 1} attempts"
                raise ServingError(code, e.details() or "", where) from None

    def predict(self, inputs: dict, signature: str = "serving_default", output_filter=()) -> dict:
        """The raw Predict call: {alias: ndarray} in, {alias: ndarray} out, no checks on our side."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        self._spec(request.model_spec, signature)
        for alias, value in inputs.items():
            request.inputs[alias].CopyFrom(tf.make_tensor_proto(value))
        request.output_filter.extend(output_filter)
        response = self._call(self._predict.Predict, request)
        return {alias: tf.make_ndarray(t) for alias, t in response.outputs.items()}

    def status(self) -> list[dict]:
        """GetModelStatus: [{"version", "state", "error_code", "error_message"}, …]."""
        from tensorflow_serving.apis import get_model_status_pb2

        request = get_model_status_pb2.GetModelStatusRequest()
        self._spec(request.model_spec)
        response = self._call(self._models.GetModelStatus, request)
        state = get_model_status_pb2.ModelVersionStatus.State.Name
        return [{"version": s.version, "state": state(s.state), "error_code": s.status.error_code,
                 "error_message": s.status.error_message} for s in response.model_version_status]


class RestClient(_Base):
    """TF Serving's REST API (`POST /v1/models/NAME[/versions/N]:predict`, columnar "inputs")."""

    def __init__(self, url: str, model: str, version: int | None = None, timeout: float = 30.0,
                 retries: int = 3, backoff: float = 0.5, label: str | None = None):
        if version is not None and label is not None:
            raise ValueError("give a version or a version label, not both")
        self.url, self.model, self.version, self.label = url.rstrip("/"), model, version, label
        self.timeout, self.retries, self.backoff = timeout, retries, backoff

    def _path(self) -> str:
        return f"{self.url}/v1/models/{self.model}" + (
            f"/versions/{self.version}" if self.version is not None else f"/labels/{self.label}" if self.label else "")

    def _request(self, url: str, body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as r:
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                try:
                    details = json.loads(e.read()).get("error", "")
                except ValueError:
                    details = e.reason
                code = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 503: "UNAVAILABLE",
                        504: "DEADLINE_EXCEEDED"}.get(e.code, f"HTTP {e.code}")
                if code in RETRYABLE and attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise ServingError(code, details, url) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                if attempt < self.retries:
                    time.sleep(self.backoff * 2 ** attempt)
                    continue
                raise ServingError("UNAVAILABLE", str(getattr(e, "reason", e)),
                                   f"{url} after {self.retries + 1} attempts") from None

    def predict(self, inputs: dict, signature: str = "serving_default", output_filter=()) -> dict:
        body = {"signature_name": signature, "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        out = self._request(self._path() + ":predict", body)["outputs"]
        if not isinstance(out, dict):  # a single output comes back bare
            out = {"images": out} if signature != "discriminate" else {"scores": out}
        dtypes = {"images": np.uint8 if signature not in ("edit_float",) else np.float32}
        return {k: np.asarray(v, dtype=dtypes.get(k)) for k, v in out.items()}

    def status(self) -> list[dict]:
        out = self._request(self._path())
        return [{"version": int(s["version"]), "state": s["state"], "error_code": s["status"].get("error_code", "OK"),
                 "error_message": s["status"].get("error_message", "")} for s in out["model_version_status"]]


# ----- command line ------------------------------------------------------------------------------
def parse_delta(text: str):
    """--delta: one finite number, or K comma-separated ones (a K-attribute model); ValueError
    naming the flag."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--delta must be a number or comma-separated numbers (3, or 3,-2), got {text!r}") from None
    if not all(np.isfinite(values)):
        raise ValueError(f"--delta must be finite, got {text!r}")
    return values[0] if len(values) == 1 else values


def client_command(server: str | None, rest: str | None, model: str, delta: str, images: list[str],
                   out: str | None, status: bool = False, signature: str = "serving_default", **kw) -> int:
    """`python -m maae_tf.serving.client`: edits `images` into `out` (a file for one image, else a
    folder) through the gRPC `server` or the `rest` URL, or with `status` lists the model's
    versions; `kw`: version, label, timeout, retries. The exit code: 0; 1 a server error; 2 a bad
    flag or input file (after an `error:` line; the other files are still edited)."""
    try:  # the flags first, before any connection
        delta = parse_delta(delta)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    client = Client(server, model, **kw) if server else RestClient(rest, model, **kw)
    try:
        if status:
            for s in client.status():
                print(f"{model} version {s['version']}: {s['state']}"
                      + (f" ({s['error_message']})" if s["error_message"] else ""))
            return 0
        if not images:
            print("error: no input image given", file=sys.stderr)
            return 2
        if not out:
            print("error: -o/--out is required", file=sys.stderr)
            return 2
        failures = 0
        for path in images:
            target = out if len(images) == 1 and not os.path.isdir(out) else os.path.join(out, os.path.basename(path))
            try:
                t = time.perf_counter()
                write_image(target, client.edit(read_image(path), delta, signature=signature))
                print(f"{path} -> {target} ({(time.perf_counter() - t) * 1000:.0f} ms)")
            except ValueError as e:
                print(f"error: {e}", file=sys.stderr)
                failures += 1
        return 2 if failures else 0
    except ServingError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # the documented `python -m maae_tf.serving.client`: the command is maae_tf/client.py
    import runpy

    runpy.run_module("maae_tf.client", run_name="__main__", alter_sys=True)
