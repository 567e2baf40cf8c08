"""`maae_tf.serving.export`: the SavedModel's signature contract, parity with the in-memory networks,
δ semantics, multi-attribute composition, float32 after mixed precision and the atomic write."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from maae_tf.config import load_workdir_config
from maae_tf.model import editor as editor_lib
from maae_tf.serving import export

from conftest import write_run  # noqa: E402  (tests/ is on sys.path under pytest)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli_show(path) -> str:
    """`saved_model_cli show --all` as a user runs it."""
    out = subprocess.run([sys.executable, "-m", "tensorflow.python.tools.saved_model_cli", "show", "--dir",
                          str(path), "--all"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def signature_block(show: str, name: str) -> str:
    m = re.search(rf"signature_def\['{name}'\]:\n(.*?)Method name is: (\S+)", show, re.S)
    assert m, f"signature {name} missing from saved_model_cli output"
    assert m.group(2) == "tensorflow/serving/predict"
    return m.group(1)


def tensor(block: str, kind: str, name: str) -> tuple[str, str]:
    m = re.search(rf"{kind}\['{name}'\] tensor_info:\n\s+dtype: (\S+)\n\s+shape: ([^\n]+)", block)
    assert m, f"{kind} {name} missing in\n{block}"
    return m.group(1), m.group(2).strip()


def images(n=2, h=40, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, 3), dtype=np.uint8)


def loaded(path):
    return tf.saved_model.load(str(path)).signatures


# ------------------------------------------------------------------------------ the contract
def test_signature_contract_single_attribute(exported):
    show = cli_show(exported["single"])
    block = signature_block(show, "serving_default")
    assert tensor(block, "inputs", "images") == ("DT_UINT8", "(-1, -1, -1, 3)")
    assert tensor(block, "inputs", "delta") == ("DT_FLOAT", "unknown_rank")
    assert tensor(block, "outputs", "images") == ("DT_UINT8", "(-1, -1, -1, 3)")
    detail = signature_block(show, "edit_detail")
    assert tensor(detail, "inputs", "images") == ("DT_UINT8", "(-1, -1, -1, 3)")
    assert tensor(detail, "outputs", "images") == ("DT_UINT8", "(-1, -1, -1, 3)")
    floats = signature_block(show, "edit_float")
    assert tensor(floats, "inputs", "images") == ("DT_FLOAT", "(-1, 32, 32, 3)")
    assert tensor(floats, "outputs", "images") == ("DT_FLOAT", "(-1, 32, 32, 3)")
    assert tensor(signature_block(show, "reconstruct"), "outputs", "images") == ("DT_UINT8", "(-1, -1, -1, 3)")
    assert tensor(signature_block(show, "discriminate"), "outputs", "scores") == ("DT_FLOAT", "(-1, 1, 2)")
    meta = signature_block(show, "metadata")
    assert tensor(meta, "outputs", "attributes") == ("DT_STRING", "(1)")
    assert tensor(meta, "outputs", "delta_0_mouth_slightly_open") == ("DT_INT32", "()")


def test_signature_contract_two_attributes_records_the_order(exported):
    show = cli_show(exported["pair"])
    assert tensor(signature_block(show, "serving_default"), "inputs", "delta") == ("DT_FLOAT", "unknown_rank")
    assert tensor(signature_block(show, "discriminate"), "outputs", "scores") == ("DT_FLOAT", "(-1, 2, 2)")
    meta = signature_block(show, "metadata")
    assert tensor(meta, "outputs", "delta_0_mouth_slightly_open") == ("DT_INT32", "()")
    assert tensor(meta, "outputs", "delta_1_blond_hair") == ("DT_INT32", "()")
    out = loaded(exported["pair"])["metadata"]()
    assert [a.decode() for a in out["attributes"].numpy()] == ["mouth_slightly_open", "blond_hair"]
    assert out["steps"].numpy().tolist() == [3, 5]
    info = json.loads((exported["pair"] / "assets.extra" / export.INFO_FILE).read_text())
    assert info["attributes"] == ["mouth_slightly_open", "blond_hair"] and info["image_size"] == 32


# ------------------------------------------------------------------------------ parity and semantics
def test_reload_parity_with_the_in_memory_networks(exported):
    model = exported["models"][0]
    sig = loaded(exported["single"])
    x = images()
    editor = editor_lib.Editor([model], [load_workdir_config(exported["runs"][0])], [3])
    d = np.array([3.0, -2.0], np.float32)
    want = editor.edit(tf.constant(x), tf.constant(d))["images"].numpy()
    got = sig["serving_default"](images=tf.constant(x), delta=tf.constant(d))["images"].numpy()
    assert got.shape == x.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1  # float rounding at .5 only
    assert np.mean(got == want) > 0.99
    xf = tf.constant(np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    np.testing.assert_allclose(sig["edit_float"](images=xf, delta=tf.constant(d))["images"].numpy(),
                               model.generate(xf, d).numpy(), atol=1e-5)


def test_delta_scalar_per_image_and_clipping(exported):
    sig = loaded(exported["single"])
    x = tf.constant(images(3))
    run = lambda d: sig["serving_default"](images=x, delta=tf.constant(d, tf.float32))["images"].numpy()
    np.testing.assert_array_equal(run(2.0), run([2.0, 2.0, 2.0]))
    np.testing.assert_array_equal(run(2.0), run([[2.0], [2.0], [2.0]]))
    np.testing.assert_array_equal(run(100.0), run(5.0))          # clipped to delta_max = 5
    assert not np.array_equal(run(5.0), run(-5.0))
    np.testing.assert_array_equal(run(0.0), sig["reconstruct"](images=x)["images"].numpy())


def test_edit_detail_gives_the_input_back_at_zero_and_keeps_resolution(exported):
    sig = loaded(exported["single"])["edit_detail"]
    x = images(2, h=120, w=90)
    np.testing.assert_array_equal(sig(images=tf.constant(x), delta=tf.constant(0.0))["images"].numpy(), x)
    edited = sig(images=tf.constant(x), delta=tf.constant(5.0))["images"].numpy()
    assert edited.shape == x.shape and not np.array_equal(edited, x)


def test_two_attributes_compose_in_order(exported):
    (a, b), sig = exported["models"], loaded(exported["pair"])
    x = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
    d = np.array([[3.0, -1.0], [0.0, 4.0]], np.float32)
    want = b.generate(a.generate(tf.constant(x), d[:, 0]), d[:, 1]).numpy()
    got = sig["edit_float"](images=tf.constant(x), delta=tf.constant(d))["images"].numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    swapped = a.generate(b.generate(tf.constant(x), d[:, 1]), d[:, 0]).numpy()
    assert np.abs(got - swapped).max() > 1e-3
    scores = sig["discriminate"](images=tf.constant(images(2)))["scores"].numpy()
    assert scores.shape == (2, 2, 2) and np.all((scores > 0) & (scores < 1))


@pytest.mark.parametrize("delta, message", [
    (np.float32(np.nan), "delta must be finite"),
    (np.ones(3, np.float32), "one value per image"),
    (np.ones((2, 3), np.float32), "one value per image"),
])
def test_bad_delta_is_rejected_naming_the_problem(exported, delta, message):
    sig = loaded(exported["single"])["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        sig(images=tf.constant(images(2)), delta=tf.constant(delta))


def test_multi_attribute_delta_must_be_n_by_k(exported):
    sig = loaded(exported["pair"])["serving_default"]
    for bad in (np.float32(1.0), np.ones(2, np.float32), np.ones((3, 2), np.float32)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=r"delta must be \[N, 2\]"):
            sig(images=tf.constant(images(2)), delta=tf.constant(bad))


# ------------------------------------------------------------------------------ files
def test_warmup_requests_are_prediction_logs_the_model_answers(exported):
    path = exported["pair"] / "assets.extra" / export.WARMUP_FILE
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
    assert [tf.make_ndarray(l.predict_log.request.inputs["images"]).shape[0] for l in logs] == list(editor_lib.WARMUP_BATCHES)
    sig = loaded(exported["pair"])["serving_default"]
    for log in logs:
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in log.predict_log.request.inputs.items()}
        assert sig(**inputs)["images"].shape == inputs["images"].shape


def test_mixed_precision_run_exports_float32(tmp_path):
    import keras

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        run, model = write_run(tmp_path / "run", "smiling", precision="mixed_bfloat16")
        assert model.decoder.compute_dtype == "bfloat16"
        path = export.export([str(run)], str(tmp_path / "models"))
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"  # put back
    finally:
        keras.mixed_precision.set_global_policy("float32")
    restored = tf.saved_model.load(path)
    assert {v.dtype for v in restored.variables} == {tf.float32}
    floats, _, _ = editor_lib.load_runs([str(run)])
    x = tf.constant(np.random.default_rng(3).uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    got = restored.signatures["edit_float"](images=x, delta=tf.constant(2.0))["images"]
    assert got.dtype == tf.float32
    np.testing.assert_allclose(got.numpy(), floats[0].generate(x, 2.0).numpy(), atol=1e-5)


def test_versions_are_written_atomically_and_never_overwritten(exported, tmp_path, monkeypatch):
    run = str(exported["runs"][0])
    base = tmp_path / "m"
    assert export.export([run], str(base)).endswith(os.sep + "1")
    assert export.export([run], str(base)).endswith(os.sep + "2")
    with pytest.raises(FileExistsError, match="immutable"):
        export.export([run], str(base), version=2)
    # a failure half way leaves no version folder and no temporary folder behind
    monkeypatch.setattr(editor_lib.Editor, "warmup_requests", lambda self, name: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        export.export([run], str(base), version=7)
    assert sorted(os.listdir(base)) == ["1", "2"]


def test_composing_runs_of_different_sizes_is_refused(exported, tmp_path):
    other, _ = write_run(tmp_path / "big", "smiling", image_size=64)
    with pytest.raises(ValueError, match="image_size"):
        editor_lib.load_runs([str(exported["runs"][0]), str(other)])


def test_cli_exports_and_names_a_missing_run(exported, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    ok = subprocess.run([sys.executable, "-m", "maae_tf.export", f"--workdir={exported['runs'][0]}",
                         f"--out={tmp_path / 'cli'}"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert ok.stdout.strip() == str(tmp_path / "cli" / "1")
    for phase in ("restored 1 run(s) at step(s) 3 in", "traced the signatures in", "wrote the SavedModel"):
        assert f"export: {phase}" in ok.stderr
    bad = subprocess.run([sys.executable, "-m", "maae_tf.export", f"--workdir={tmp_path / 'nope'}",
                          f"--out={tmp_path / 'x'}"], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert bad.returncode == 2 and "config.json not found" in bad.stderr
    assert not (tmp_path / "x").exists()
