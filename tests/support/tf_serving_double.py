"""ModelServerDouble: a TEST DOUBLE for `tensorflow_model_server`, in process, on 127.0.0.1.

The real TF Serving binary is not on PyPI nor in Debian and cannot run on the machines this
project is tested on (docs/stack.md), so tests and `benchmarks/serving_bench.py` talk to
this stand-in instead. It is not a server to deploy: deploy `tensorflow/serving` (serving/README.md).

It does what tensorflow_model_server does on the paths the client uses, the same way:

- loads every integer version folder under each model's base path into a TF1 Session from the
  SavedModel's `serve` MetaGraph (as the server's SavedModelBundle does) and replays the
  warm-up requests in `assets.extra/tf_serving_warmup_requests`;
- version policies latest (the server's default: only the highest version), all and specific,
  and version labels, given directly or read from a models.config (`from_config_file`);
- `PredictionService.Predict`: resolves the model spec, checks the signature and the request's
  inputs, then runs the signature's tensors through `Session::Run` (the C API call the server
  makes, so TF's own errors, e.g. "Expects arg[0] to be float but int32 is provided", come back
  unchanged) and returns the outputs; `PredictionService.GetModelMetadata` (signature_def);
  `ModelService.GetModelStatus`;
- optional REST on another port: `POST /v1/models/NAME[/versions/N]:predict` with the columnar
  `{"inputs": ...}` or row `{"instances": [...]}` form, `GET /v1/models/NAME[/versions/N]`.

Error statuses and messages are TF Serving's own (tensorflow_serving/servables/tensorflow/
predict_util.cc, core/.../servable_handle lookups, model_service_impl.cc):

  unknown model       NOT_FOUND  "Servable not found for request: Latest(NAME)"
  unknown version     NOT_FOUND  "Servable not found for request: Specific(NAME, V)"
  unknown signature   FAILED_PRECONDITION  'Serving signature key "S" not found.'
  missing/extra input INVALID_ARGUMENT  "input size does not match signature: …"
  graph errors        the OpError's code and message (INVALID_ARGUMENT for a NaN δ, …)
"""

from __future__ import annotations

import json
import os
import re
import threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_log_pb2, prediction_service_pb2_grpc)

WARMUP_PATH = os.path.join("assets.extra", "tf_serving_warmup_requests")


class ServingStatus(Exception):
    """A request failed with a gRPC status code (grpc.StatusCode) and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_CODES = {c.value[0]: c for c in grpc.StatusCode}
_HTTP = {grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
         grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.UNAVAILABLE: 503,
         grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.UNIMPLEMENTED: 501}


class LoadedVersion:
    """One version of one model: a Session over the SavedModel's serve MetaGraph."""

    def __init__(self, path: str):
        self.path = path
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.session = tf.compat.v1.Session(graph=self.graph)
            self.meta_graph = tf.compat.v1.saved_model.loader.load(self.session, ["serve"], path)
        self.signatures = {k: v for k, v in self.meta_graph.signature_def.items() if not k.startswith("__")}

    def run(self, signature_name: str, inputs: dict, output_filter=()) -> dict:
        """Runs a signature on numpy inputs as predict_util.cc does; returns {alias: ndarray}."""
        if signature_name not in self.signatures:
            raise ServingStatus(grpc.StatusCode.FAILED_PRECONDITION,
                                f'Serving signature key "{signature_name}" not found.')
        sig = self.signatures[signature_name]
        want, sent = sorted(sig.inputs), sorted(inputs)
        if len(sent) != len(want):
            raise ServingStatus(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"input size does not match signature: {len(sent)}!={len(want)} len({{{','.join(sent)}}}) != "
                f"len({{{','.join(want)}}}). Sent extra: {{{','.join(sorted(set(sent) - set(want)))}}}. "
                f"Missing but required: {{{','.join(sorted(set(want) - set(sent)))}}}.")
        for alias in sent:
            if alias not in sig.inputs:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"input tensor alias not found in signature: {alias}. Inputs expected to be "
                                    f"in the set {{{','.join(want)}}}.")
        aliases = list(output_filter) or sorted(sig.outputs)
        for alias in aliases:
            if alias not in sig.outputs:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"output tensor alias not found in signature: {alias} Outputs expected to be "
                                    f"in the set {{{','.join(sorted(sig.outputs))}}}.")
        tensor = self.graph.get_tensor_by_name
        feeds = {tensor(sig.inputs[a].name)._as_tf_output(): np.asarray(v) for a, v in inputs.items()}
        fetches = [tensor(sig.outputs[a].name)._as_tf_output() for a in aliases]
        try:
            # BaseSession.run would cast and shape-check the feeds in Python; the server does not,
            # so call the C API's TF_SessionRun directly, as the server calls Session::Run.
            values = self.session._call_tf_sessionrun(None, feeds, fetches, [], None)
        except tf.errors.OpError as e:
            raise ServingStatus(_CODES.get(e.error_code, grpc.StatusCode.UNKNOWN), e.message) from None
        return dict(zip(aliases, values))

    def warm_up(self) -> int:
        """Replays assets.extra/tf_serving_warmup_requests; returns how many requests ran."""
        path = os.path.join(self.path, WARMUP_PATH)
        if not os.path.exists(path):
            return 0
        count = 0
        for record in tf.data.TFRecordDataset(path):
            log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
            request = log.predict_log.request
            self.run(request.model_spec.signature_name or "serving_default",
                     {k: tf.make_ndarray(v) for k, v in request.inputs.items()}, request.output_filter)
            count += 1
        return count

    def close(self):
        self.session.close()


class ModelServerDouble:
    """A test double for tensorflow_model_server (module docstring). Use as a context manager:

        with ModelServerDouble({"mouth_open": "models/mouth_open"}, rest=True) as server:
            Client(server.grpc_address, "mouth_open").edit(images, 3.0)
    """

    def __init__(self, models: dict[str, str], version_policy: str = "latest", rest: bool = False,
                 max_workers: int = 4, max_message_bytes: int = 256 << 20, labels: dict | None = None,
                 policies: dict | None = None, port: int = 0, rest_port: int = 0):
        """models: {name: base_path}. version_policy: "latest" or "all" for every model, or per
        model in `policies` as ("latest", n) / ("all",) / ("specific", [versions]); labels:
        {name: {label: version}}. `from_config_file` reads these from a models.config."""
        if version_policy not in ("latest", "all"):
            raise ValueError(f"version_policy must be 'latest' or 'all', got {version_policy!r}")
        self.versions: dict[str, dict[int, LoadedVersion]] = {}
        self.labels = labels or {}
        self.warmup_counts: dict[tuple[str, int], int] = {}
        for name, base in models.items():
            found = sorted(int(n) for n in os.listdir(base) if n.isdigit()) if os.path.isdir(base) else []
            if not found:
                raise FileNotFoundError(f"no version folder (an integer name) under {base} for model {name!r}")
            policy = (policies or {}).get(name, ("latest", 1) if version_policy == "latest" else ("all",))
            if policy[0] == "latest":
                chosen = found[-policy[1]:]
            elif policy[0] == "specific":
                missing = sorted(set(policy[1]) - set(found))
                if missing:
                    raise FileNotFoundError(f"model {name!r}: versions {missing} not under {base}")
                chosen = sorted(policy[1])
            else:
                chosen = found
            self.versions[name] = {}
            for v in chosen:
                loaded = LoadedVersion(os.path.join(base, str(v)))
                self.warmup_counts[(name, v)] = loaded.warm_up()
                self.versions[name][v] = loaded
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(_PredictionService(self), self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(_ModelService(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port(f"127.0.0.1:{port}")
        if self.grpc_port == 0:
            raise OSError(f"cannot listen on 127.0.0.1:{port}")
        self.grpc_address = f"127.0.0.1:{self.grpc_port}"
        self._http = None
        self.rest_address = None
        if rest:
            self._http = ThreadingHTTPServer(("127.0.0.1", rest_port), _rest_handler(self))
            self.rest_address = f"http://127.0.0.1:{self._http.server_address[1]}"

    @classmethod
    def from_config_file(cls, path: str, rewrite=lambda base_path: base_path, **kwargs) -> "ModelServerDouble":
        """Serves what a TF Serving models.config (ModelServerConfig text) lists; `rewrite` maps
        each base_path (e.g. /models/x inside a container) to a local folder."""
        from google.protobuf import text_format
        from tensorflow_serving.config import model_server_config_pb2

        with open(path, encoding="utf-8") as f:
            config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
        models, policies, labels = {}, {}, {}
        for c in config.model_config_list.config:
            models[c.name] = rewrite(c.base_path)
            which = c.model_version_policy.WhichOneof("policy_choice")
            policies[c.name] = (("specific", list(c.model_version_policy.specific.versions)) if which == "specific"
                                else ("all",) if which == "all"
                                else ("latest", c.model_version_policy.latest.num_versions or 1))
            labels[c.name] = dict(c.version_labels)
        return cls(models, policies=policies, labels=labels, **kwargs)

    # ----- lifecycle --------------------------------------------------------------------------------
    def start(self) -> "ModelServerDouble":
        self._grpc.start()
        if self._http is not None:
            threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self):
        # wait for gRPC's own shutdown: interpreter exit racing gRPC's polling thread can hang the
        # process (grpc/grpc#17214), which the command below once did in a loaded test run
        self._grpc.stop(grace=None).wait(timeout=30)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        for versions in self.versions.values():
            for loaded in versions.values():
                loaded.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ----- what both protocols share -------------------------------------------------------------
    def lookup(self, name: str, version: int | None = None, label: str = "") -> tuple[int, LoadedVersion]:
        if label:
            if label not in self.labels.get(name, {}):
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"Unrecognized servable version label: {label}")
            version = self.labels[name][label]
        versions = self.versions.get(name, {})
        if version is None:
            if not versions:
                raise ServingStatus(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
            version = max(versions)
        if version not in versions:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND,
                                f"Servable not found for request: Specific({name}, {version})")
        return version, versions[version]

    def status(self, name: str, version: int | None = None) -> list[int]:
        if name not in self.versions:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
        if version is not None and version not in self.versions[name]:
            raise ServingStatus(grpc.StatusCode.NOT_FOUND, f"Could not find version {version} of model {name}")
        return [version] if version is not None else sorted(self.versions[name])


def _spec_version(spec) -> int | None:
    return spec.version.value if spec.HasField("version") else None


class _PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, server: ModelServerDouble):
        self.server = server

    def Predict(self, request, context):
        try:
            spec = request.model_spec
            version, loaded = self.server.lookup(spec.name, _spec_version(spec), spec.version_label)
            signature = spec.signature_name or "serving_default"
            try:
                inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            except (TypeError, ValueError) as e:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT, f"could not parse a request tensor: {e}") from e
            outputs = loaded.run(signature, inputs, request.output_filter)
        except ServingStatus as e:
            context.abort(e.code, e.message)
        response = predict_pb2.PredictResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        response.model_spec.signature_name = signature
        for alias, value in outputs.items():
            response.outputs[alias].CopyFrom(tf.make_tensor_proto(value))
        return response

    def GetModelMetadata(self, request, context):
        try:
            spec = request.model_spec
            version, loaded = self.server.lookup(spec.name, _spec_version(spec), spec.version_label)
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                    "Metadata field signature_def is the only one supported")
        except ServingStatus as e:
            context.abort(e.code, e.message)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = version
        signatures = get_model_metadata_pb2.SignatureDefMap()
        for key, sig in loaded.meta_graph.signature_def.items():
            signatures.signature_def[key].CopyFrom(sig)
        response.metadata["signature_def"].Pack(signatures)
        return response


class _ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, server: ModelServerDouble):
        self.server = server

    def GetModelStatus(self, request, context):
        try:
            versions = self.server.status(request.model_spec.name, _spec_version(request.model_spec))
        except ServingStatus as e:
            context.abort(e.code, e.message)
        response = get_model_status_pb2.GetModelStatusResponse()
        for v in versions:
            response.model_version_status.add(version=v, state=get_model_status_pb2.ModelVersionStatus.AVAILABLE)
        return response


def _jsonable(value: np.ndarray):
    """A tensor as TF Serving's REST API writes it: nested lists, strings as UTF-8 text."""
    if value.dtype.kind in "SO":
        return np.vectorize(lambda b: b.decode("utf-8") if isinstance(b, bytes) else b, otypes=[object])(
            value).tolist()
    return value.tolist()


_REST_PATH = re.compile(r"^/v1/models/([^/:]+)(?:/versions/(\d+)|/labels/([^/:]+))?(:predict)?$")


def _rest_handler(server: ModelServerDouble):
    """TF Serving's REST API (predict and model status) over the double's models."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _reply(self, status: int, body: dict):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _fail(self, e: ServingStatus):
            self._reply(_HTTP.get(e.code, 500), {"error": e.message})

        def do_GET(self):
            m = _REST_PATH.match(self.path)
            if not m or m.group(4):
                return self._reply(404, {"error": f"Malformed request: GET {self.path}"})
            try:
                version = server.labels.get(m.group(1), {}).get(m.group(3)) if m.group(3) else None
                versions = server.status(m.group(1), int(m.group(2)) if m.group(2) else version)
            except ServingStatus as e:
                return self._fail(e)
            self._reply(200, {"model_version_status": [
                {"version": str(v), "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
                for v in versions]})

        def do_POST(self):
            m = _REST_PATH.match(self.path)
            if not m or not m.group(4):
                return self._reply(404, {"error": f"Malformed request: POST {self.path}"})
            try:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                _, loaded = server.lookup(m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3) or "")
                signature = body.get("signature_name", "serving_default")
                sig = loaded.signatures.get(signature)
                if sig is None:
                    raise ServingStatus(grpc.StatusCode.FAILED_PRECONDITION,
                                        f'Serving signature key "{signature}" not found.')
                if "inputs" in body:
                    raw = body["inputs"] if isinstance(body["inputs"], dict) else {next(iter(sig.inputs)): body["inputs"]}
                    row = False
                elif "instances" in body:
                    rows = body["instances"]
                    raw = ({k: [r[k] for r in rows] for k in rows[0]} if rows and isinstance(rows[0], dict)
                           else {next(iter(sig.inputs)): rows})
                    row = True
                else:
                    raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                        "Missing 'inputs' or 'instances' key")
                inputs = {}
                for k, v in raw.items():
                    dtype = tf.dtypes.as_dtype(sig.inputs[k].dtype).as_numpy_dtype if k in sig.inputs else np.float32
                    try:
                        inputs[k] = np.asarray(v, dtype=dtype)
                    except (TypeError, ValueError, OverflowError) as e:
                        raise ServingStatus(grpc.StatusCode.INVALID_ARGUMENT,
                                            f"Failed to process input {k}: {e}") from e
                outputs = loaded.run(signature, inputs)
            except ServingStatus as e:
                return self._fail(e)
            except (ValueError, KeyError, TypeError, IndexError) as e:
                return self._reply(400, {"error": f"Malformed request: {e}"})
            listed = {k: _jsonable(v) for k, v in outputs.items()}
            if row:
                first = next(iter(listed.values()))
                n = len(first)
                preds = first if len(listed) == 1 else [{k: v[i] for k, v in listed.items()} for i in range(n)]
                return self._reply(200, {"predictions": preds})
            self._reply(200, {"outputs": next(iter(listed.values())) if len(listed) == 1 else listed})

    return Handler


def main(argv=None) -> int:
    """`python tests/support/tf_serving_double.py`: runs the test double in the foreground, for trying the
    client by hand where tensorflow_model_server cannot run. Not for deployment."""
    import argparse
    import signal
    import sys

    p = argparse.ArgumentParser(prog="python tests/support/tf_serving_double.py", description=main.__doc__)
    p.add_argument("--model", action="append", default=[], metavar="NAME=BASE", help="a model and its base path")
    p.add_argument("--model_config_file", help="a TF Serving models.config instead of --model")
    p.add_argument("--rewrite", default=None, metavar="FROM=TO",
                   help="with --model_config_file: replace the base paths' prefix FROM by TO")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--rest_api_port", type=int, default=8501)
    args = p.parse_args(argv)
    if args.model_config_file:
        old, _, new = (args.rewrite or "=").partition("=")
        server = ModelServerDouble.from_config_file(
            args.model_config_file, rewrite=lambda b: new + b[len(old):] if old and b.startswith(old) else b,
            rest=True, port=args.port, rest_port=args.rest_api_port)
    else:
        if not args.model:
            p.error("give --model NAME=BASE (repeatable) or --model_config_file")
        server = ModelServerDouble(dict(m.split("=", 1) for m in args.model), rest=True, port=args.port,
                                   rest_port=args.rest_api_port)
    # before the line that says it serves: a SIGTERM sent as soon as it is read is then handled too
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        print(f"test double of tensorflow_model_server: gRPC {server.grpc_address}, REST {server.rest_address}, "
              f"models {sorted(server.versions)}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
