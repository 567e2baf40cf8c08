"""Serving over gRPC and REST: `maae_tf.serving.client` against `ModelServerDouble`, the
in-process TEST DOUBLE of tensorflow_model_server (which cannot run on these machines)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import cv2
import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2, prediction_service_pb2_grpc

from maae_tf.config import load_workdir_config
from maae_tf.model import editor as editor_lib
from maae_tf.serving import export
from maae_tf.serving.client import Client, RestClient, ServingError, as_batch, as_delta
from support.tf_serving_double import ModelServerDouble

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def server(exported):
    models = {"mouth_open": str(exported["single"].parent), "pair": str(exported["pair"].parent)}
    with ModelServerDouble(models, rest=True) as s:
        yield s


def faces(n=3, h=50, w=40, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def local(path, signature="serving_default", **inputs):
    fn = tf.saved_model.load(str(path)).signatures[signature]
    return fn(**{k: tf.constant(v) for k, v in inputs.items()})["images"].numpy()


def test_server_replays_the_warmup_requests(server):
    assert server.warmup_counts == {("mouth_open", 1): len(editor_lib.WARMUP_BATCHES),
                                    ("pair", 1): len(editor_lib.WARMUP_BATCHES)}


def test_grpc_round_trip_is_bit_identical_to_the_local_savedmodel(server, exported):
    x, d = faces(), np.array([3.0, -1.5, 0.0], np.float32)
    with Client(server.grpc_address, "mouth_open") as c:
        got = c.edit(x, d)
        assert c.metadata()["attributes"] == ["mouth_slightly_open"]
        detail = c.edit(x[0], 2.0, signature="edit_detail")
    np.testing.assert_array_equal(got, local(exported["single"], images=x, delta=d))
    np.testing.assert_array_equal(detail, local(exported["single"], "edit_detail", images=x[:1],
                                                delta=np.float32(2.0))[0])
    with Client(server.grpc_address, "pair") as c:
        pair = c.edit(x, [2.0, -3.0])                          # [K]: the same edit for every image
    np.testing.assert_array_equal(pair, local(exported["pair"], images=x,
                                              delta=np.tile(np.float32([[2.0, -3.0]]), (3, 1))))


def test_rest_round_trip_and_status(server, exported):
    x = faces(2)
    client = RestClient(server.rest_address, "mouth_open")
    np.testing.assert_array_equal(client.edit(x, 4.0), local(exported["single"], images=x, delta=np.float32(4.0)))
    assert client.status() == [{"version": 1, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}]
    with pytest.raises(ServingError, match=r"Servable not found for request: Latest\(nope\)") as e:
        RestClient(server.rest_address, "nope").predict({"images": x, "delta": np.float32(1)})
    assert e.value.code == "NOT_FOUND"


def test_status_and_metadata(server):
    with Client(server.grpc_address, "pair") as c:
        assert c.status() == [{"version": 1, "state": "AVAILABLE", "error_code": 0, "error_message": ""}]
        meta = c.metadata()
    assert meta["attributes"] == ["mouth_slightly_open", "blond_hair"] and meta["image_size"] == 32
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "pair"
    with grpc.insecure_channel(server.grpc_address) as channel:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).GetModelMetadata(request, timeout=30)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sigs)
    assert set(editor_lib.SIGNATURES) <= set(sigs.signature_def)


# Each bad request, with the status and message tensorflow_model_server answers (predict_util.cc,
# the servable manager, TF's Session::Run and the graph's own checks).
BAD = {
    "wrong images dtype": (dict(images=faces().astype(np.float32), delta=np.float32(1)),
                           "INVALID_ARGUMENT", r"Expects arg\[\d\] to be uint8 but float is provided"),
    "wrong delta dtype": (dict(images=faces(), delta=np.int32(1)),
                          "INVALID_ARGUMENT", r"Expects arg\[\d\] to be float but int32 is provided"),
    "wrong images rank": (dict(images=faces()[0], delta=np.float32(1)),
                          "INVALID_ARGUMENT", r"input must be 4-dimensional"),
    "missing delta": (dict(images=faces()), "INVALID_ARGUMENT",
                      r"input size does not match signature: 1!=2 len\(\{images\}\) != len\(\{delta,images\}\)\. "
                      r"Sent extra: \{\}\. Missing but required: \{delta\}\."),
    "NaN delta": (dict(images=faces(), delta=np.float32(np.nan)), "INVALID_ARGUMENT",
                  r"delta must be finite \(got NaN or Inf\)"),
    "batch mismatch": (dict(images=faces(3), delta=np.ones(2, np.float32)), "INVALID_ARGUMENT",
                       r"delta must be a scalar or hold one value per image"),
    "empty batch": (dict(images=faces(1)[:0], delta=np.float32(1)), "INVALID_ARGUMENT", r"images is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_requests_get_the_servers_status_and_message(server, case):
    inputs, code, message = BAD[case]
    with Client(server.grpc_address, "mouth_open") as c, pytest.raises(ServingError) as e:
        c.predict(inputs)
    assert e.value.code == code
    assert __import__("re").search(message, e.value.details), e.value.details


@pytest.mark.parametrize("model, version, signature, code, message", [
    ("nope", None, "serving_default", "NOT_FOUND", "Servable not found for request: Latest(nope)"),
    ("mouth_open", 7, "serving_default", "NOT_FOUND", "Servable not found for request: Specific(mouth_open, 7)"),
    ("mouth_open", None, "nope", "FAILED_PRECONDITION", 'Serving signature key "nope" not found.'),
])
def test_unknown_model_version_or_signature(server, model, version, signature, code, message):
    with Client(server.grpc_address, model, version=version) as c, pytest.raises(ServingError) as e:
        c.predict({"images": faces(), "delta": np.float32(1)}, signature=signature)
    assert (e.value.code, e.value.details) == (code, message)
    assert "check" in str(e.value) or "signature" in str(e.value)  # says what to check


def test_status_of_unknown_model_and_version(server):
    with Client(server.grpc_address, "nope") as c, pytest.raises(ServingError, match="Could not find any versions of model nope"):
        c.status()
    with Client(server.grpc_address, "mouth_open", version=9) as c, pytest.raises(ServingError, match="Could not find version 9 of model mouth_open"):
        c.status()


def test_version_policy_latest_and_all(exported, tmp_path):
    base = tmp_path / "m"
    for _ in range(2):
        export.export([str(exported["runs"][0])], str(base))
    with ModelServerDouble({"m": str(base)}) as s, Client(s.grpc_address, "m", version=1) as c:
        assert [v["version"] for v in Client(s.grpc_address, "m").status()] == [2]
        with pytest.raises(ServingError, match=r"Specific\(m, 1\)"):
            c.edit(faces(1), 1.0)
    with ModelServerDouble({"m": str(base)}, version_policy="all") as s, Client(s.grpc_address, "m", version=1) as c:
        assert [v["version"] for v in c.status()] == [1]
        assert c.edit(faces(1), 1.0).shape == (1, 50, 40, 3)


def test_unavailable_server_is_retried_with_backoff_then_named():
    with socket_port() as port:  # a port nobody listens on
        t = time.perf_counter()
        with Client(f"127.0.0.1:{port}", "m", retries=2, backoff=0.1, timeout=5) as c, pytest.raises(ServingError) as e:
            c.status()
    assert e.value.code == "UNAVAILABLE" and "after 3 attempts" in str(e.value)
    assert "is the server running" in str(e.value)
    assert time.perf_counter() - t >= 0.1 + 0.2  # two backoffs: 0.1 s, 0.2 s


def test_deadline_is_applied(server):
    with Client(server.grpc_address, "mouth_open", timeout=1e-4, retries=0) as c, pytest.raises(ServingError) as e:
        c.predict({"images": faces(), "delta": np.float32(1)})
    assert e.value.code == "DEADLINE_EXCEEDED"


def test_client_checks_inputs_before_sending():
    with pytest.raises(ValueError, match="uint8"):
        as_batch(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match=r"\[H, W, 3\] or \[N, H, W, 3\]"):
        as_batch(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match="finite"):
        as_delta(float("nan"), 2)
    with pytest.raises(ValueError, match="one per image"):
        as_delta([1.0, 2.0, 3.0], 2)
    assert as_delta([1.0, -1.0], 3, k=2).shape == (3, 2)
    assert as_delta(2.0, 3, k=2).tolist() == [[2.0, 2.0]] * 3


def test_command_line_round_trip_on_an_image_file(server, exported, tmp_path):
    photo = faces(1, 64, 48, seed=5)[0]
    src, out = tmp_path / "in.png", tmp_path / "out.png"
    cv2.imwrite(str(src), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    cmd = [sys.executable, "-m", "maae_tf.serving.client", f"--server={server.grpc_address}", "--model=mouth_open"]
    r = subprocess.run(cmd + ["--delta=3", str(src), "-o", str(out)], capture_output=True, text=True, env=env,
                       cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    edited = cv2.cvtColor(cv2.imread(str(out)), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(edited, local(exported["single"], images=photo[None], delta=np.float32(3))[0])
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = subprocess.run(cmd + ["--delta=3", str(tmp_path / "bad.jpg"), str(tmp_path / "missing.png"), str(src),
                              "-o", str(tmp_path / "outdir")], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=300)
    assert r.returncode == 2
    assert "bad.jpg: not a readable image" in r.stderr and "missing.png: no such file" in r.stderr
    assert os.listdir(tmp_path / "outdir") == ["in.png"]  # the good one is still edited
    r = subprocess.run(cmd + ["--status"], capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    assert r.returncode == 0 and "mouth_open version 1: AVAILABLE" in r.stdout


class socket_port:
    """A free local port that nothing listens on while the block runs."""

    def __enter__(self):
        import socket

        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc):
        self.s.close()


def test_the_shipped_models_config_serves_exports(exported, tmp_path):
    """serving/models.config as written, its /export/... paths mapped to exports made here."""
    root = tmp_path / "models"
    for name in ("mouth_open", "blond_hair"):
        export.export([str(exported["runs"][0 if name == "mouth_open" else 1])], str(root / name))
    for _ in range(2):
        export.export([str(r) for r in exported["runs"]], str(root / "face_edit"))
    config = os.path.join(REPO, "serving", "models.config")
    rewrite = lambda p: str(root / os.path.basename(p))
    with ModelServerDouble.from_config_file(config, rewrite=rewrite, rest=True) as s:
        assert sorted(s.versions) == ["blond_hair", "face_edit", "mouth_open"]
        assert sorted(s.versions["face_edit"]) == [1, 2]
        with Client(s.grpc_address, "face_edit", label="canary") as c:
            assert c.edit(faces(2), [1.0, 2.0]).shape == (2, 50, 40, 3)
        with Client(s.grpc_address, "face_edit", label="nope") as c, pytest.raises(ServingError) as e:
            c.edit(faces(1), [1.0, 2.0])
        assert (e.value.code, e.value.details) == ("INVALID_ARGUMENT", "Unrecognized servable version label: nope")
        stable = RestClient(s.rest_address, "face_edit", label="stable").edit(faces(1), [1.0, 2.0])
        by_version = Client(s.grpc_address, "face_edit", version=1).edit(faces(1), [1.0, 2.0])
        np.testing.assert_array_equal(stable, by_version)


def test_batching_parameters_file_names_only_known_fields():
    known = {"max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads",
             "allowed_batch_sizes", "pad_variable_length_inputs"}
    lines = [l.split("#")[0].strip() for l in open(os.path.join(REPO, "serving", "batching_parameters.txt"))]
    fields = {l.split()[0].rstrip(":") for l in lines if l}
    assert fields == known
    sizes = [int(l.split(":")[1]) for l in lines if l.startswith("allowed_batch_sizes")]
    assert sizes == sorted(sizes) and f"max_batch_size {{ value: {sizes[-1]} }}" in lines


def test_serving_benchmark_measures_the_three_paths(exported, tmp_path):
    from maae_tf.serving import bench

    model = exported["models"][0]
    editor = editor_lib.Editor([model], [load_workdir_config(exported["runs"][0])], [3])
    results = bench.measure(editor, str(tmp_path / "b"), batch=2, latency_calls=2, throughput_calls=1,
                            server=ModelServerDouble)
    assert set(results) == {"keras", "savedmodel", "grpc"}
    assert all(r["p50_ms"] > 0 and r["images_per_s"] > 0 for r in results.values())
    assert results["keras"]["p50_ratio"] == 1.0
    assert "(c) client → gRPC → server double" in bench.table(results, "info")


def test_double_runs_as_a_command_for_trying_the_client_by_hand(exported):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, os.path.join("tests", "support", "tf_serving_double.py"),
                             f"--model=m={exported['single'].parent}", "--port=0", "--rest_api_port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO, env=env)
    try:
        line = proc.stdout.readline()
        assert "test double of tensorflow_model_server" in line, line
        address = line.split("gRPC ")[1].split(",")[0]
        with Client(address, "m") as c:
            assert c.status()[0]["state"] == "AVAILABLE"
    finally:
        proc.terminate()
        assert proc.wait(timeout=60) == 0
