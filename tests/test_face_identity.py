"""Tests of maae_tf.evaluation.identity: the cosine metric, both embedders, the separation check and the
command line (CPU; dlib tests skip where dlib or ../shared/celeba-sample is absent)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from conftest import tiny_config
from maae_tf.evaluation import identity as fi
from maae_tf.config import base_config
from maae_tf.files import read_image

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(REPO, "..", "shared", "celeba-sample")
SAMPLE_IMAGES = os.path.join(SAMPLE, "img_align_celeba")
KEYS = ("num_images", "jpeg_quality", "self_similarity_mean", "self_similarity_min", "other_similarity_mean",
        "other_similarity_max", "auc", "share_self_above_all_others", "embedder")


def _dlib_or_skip():
    try:
        fi.make_embedder("dlib")
    except RuntimeError as e:
        pytest.skip(f"dlib is not available: {e}")


# ------------------------------------------------------------------------------ cosine_similarity
rows = arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 16)),
              elements=st.floats(-1e3, 1e3, allow_nan=False))


@settings(max_examples=60, deadline=None)
@given(rows, st.floats(1e-3, 1e3))
def test_cosine_laws(a, scale):
    assume(np.all(np.linalg.norm(a, axis=1) > 1e-3))
    b = a[::-1].copy() if len(a) > 1 else -a
    np.testing.assert_allclose(fi.cosine_similarity(a, a), 1.0, atol=1e-12)                 # self = 1
    np.testing.assert_allclose(fi.cosine_similarity(a * scale, b), fi.cosine_similarity(a, b), atol=1e-12)
    np.testing.assert_array_equal(fi.cosine_similarity(a, b), fi.cosine_similarity(b, a))  # symmetric
    assert np.all(np.abs(fi.cosine_similarity(a, b)) <= 1.0)


def test_cosine_known_values_zero_rows_and_shape_errors():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    b = np.array([[0.0, 2.0], [-3.0, -3.0], [1.0, 0.0]])
    out = fi.cosine_similarity(a, b)
    np.testing.assert_allclose(out[:2], [0.0, -1.0], atol=1e-12)
    assert np.isnan(out[2])                                           # undefined for a zero vector
    with pytest.raises(ValueError, match="same shape"):
        fi.cosine_similarity(np.ones((2, 3)), np.ones((3, 3)))
    with pytest.raises(ValueError, match="same shape"):
        fi.cosine_similarity(np.ones(3), np.ones(3))


# --------------------------------------------------------------------------------- F_ID embedder
@pytest.fixture(scope="module")
def own():
    """The run's own F_ID (identity network "training") with random weights."""
    return fi.make_embedder("training", tiny_config())


def test_training_embedder_unit_norm_deterministic_and_named(own):
    x = np.random.default_rng(0).uniform(-1, 1, (5, 32, 32, 3)).astype(np.float32)
    e = own.embed(x)
    assert e.shape[0] == 5 and e.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(e, own.embed(x))
    np.testing.assert_allclose(fi.identity_similarity(own, x, x), 1.0, atol=1e-9)
    np.testing.assert_allclose(own.embed(x[0]), e[:1], atol=1e-6)        # one [S, S, 3] image
    assert own.embed(np.zeros((2, 64, 64, 3), np.float32)).shape == (2, e.shape[1])  # resized to 32
    assert own.embed(np.zeros((0, 32, 32, 3), np.float32)).shape == (0, e.shape[1])
    assert "random weights" in own.name and "not a face recogniser" in own.name


def test_embedders_reject_bad_inputs(own):
    with pytest.raises(ValueError, match="floats in"):
        own.embed(np.zeros((1, 32, 32, 3), np.uint8))
    for shape in ((1, 16, 16, 3), (1, 32, 48, 3), (1, 32, 32, 1), (32, 32)):
        with pytest.raises(ValueError, match="S >= 32"):
            own.embed(np.zeros(shape, np.float32))


def test_make_embedder_errors():
    with pytest.raises(ValueError, match="auto, dlib, training"):
        fi.make_embedder("vggface")
    with pytest.raises(ValueError, match="config"):
        fi.make_embedder("training")


def test_old_name_fid_still_means_training(caplog):
    """"fid", the deprecated name of "training", still works, with one warning line per process."""
    fi._warn_renamed.cache_clear()
    caplog.set_level(logging.WARNING)
    first, second = fi.make_embedder("fid", tiny_config()), fi.make_embedder("fid", tiny_config())
    assert isinstance(first, fi.TrainingEmbedder) and isinstance(second, fi.TrainingEmbedder)
    lines = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert lines == ["identity network 'fid' is deprecated: it is now called 'training' (the run's own F_ID)"]
    assert [fi.current_name(k) for k in ("fid", "training", "dlib")] == ["training", "training", "dlib"]


def test_auto_falls_back_to_training_without_dlib(monkeypatch):
    def missing():
        raise RuntimeError("no dlib here")

    monkeypatch.setattr(fi, "_dlib_models", missing)
    with pytest.raises(RuntimeError, match="no dlib here"):
        fi.make_embedder("dlib")
    with pytest.raises(ValueError, match="no dlib here"):
        fi.make_embedder("auto")                                  # nothing to fall back to
    embedder = fi.make_embedder("auto", tiny_config())
    assert isinstance(embedder, fi.TrainingEmbedder) and "F_ID" in embedder.name


# ------------------------------------------------------------------------------ separation_check
def _batch(images) -> np.ndarray:
    """A stand-in embedder's input as [N, S, S, 3], given a batch or one image."""
    return np.asarray(images, np.float32).reshape(-1, *np.shape(images)[-3:])


class _BrightnessEmbedder(fi.Embedder):
    """One-hot of the mean brightness in 8 bins: flat images of distinct greys are 8 'people'."""

    name = "brightness"

    def embed(self, images):
        x = _batch(images)
        e = np.zeros((len(x), 8))
        e[np.arange(len(x)), np.clip(((x.mean(axis=(1, 2, 3)) + 1) * 4).astype(int), 0, 7)] = 1.0
        return e


class _ConstantEmbedder(fi.Embedder):
    name = "constant"

    def embed(self, images):
        return np.ones((len(_batch(images)), 4)) / 2.0


def test_separation_check_figures_and_ties():
    images = [np.full((32, 32, 3), 16 + 32 * i, np.uint8) for i in range(6)]
    r = fi.separation_check(_BrightnessEmbedder(), images)
    assert set(KEYS) <= set(r) and r["num_images"] == 6 and r["jpeg_quality"] == 30
    assert r["self_similarity_min"] == 1.0 and r["other_similarity_max"] == 0.0
    assert r["auc"] == 1.0 and r["share_self_above_all_others"] == 1.0 and r["embedder"] == "brightness"
    tied = fi.separation_check(_ConstantEmbedder(), images)
    assert tied["auc"] == 0.5 and tied["share_self_above_all_others"] == 0.0   # ties count half
    with pytest.raises(ValueError, match="at least 2"):
        fi.separation_check(_ConstantEmbedder(), images[:1])
    with pytest.raises(ValueError, match="differ in size"):
        fi.separation_check(_ConstantEmbedder(), [images[0], np.zeros((48, 48, 3), np.uint8)])


# -------------------------------------------------------------------------- dlib on real photos
def test_dlib_separates_real_people():
    if not os.path.isdir(SAMPLE_IMAGES):
        pytest.skip(f"{SAMPLE} is not here")
    _dlib_or_skip()
    emb = fi.make_embedder("dlib")
    assert emb.name == "dlib_resnet_v1" and fi.make_embedder("auto").name == emb.name
    crops = [fi.read_crop(p, 128, base_config()) for p in fi.image_files(SAMPLE_IMAGES, 8)]
    r = fi.separation_check(emb, crops)
    assert r["num_images"] == 8
    assert r["self_similarity_mean"] > r["other_similarity_mean"] + 0.05
    assert r["self_similarity_min"] > r["other_similarity_mean"]
    assert r["auc"] > 0.9
    x = np.stack(crops[:3]).astype(np.float32) / 127.5 - 1.0
    e = emb.embed(x)
    assert e.shape == (3, 128) and e.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-9)
    np.testing.assert_array_equal(e, emb.embed(x))
    np.testing.assert_allclose(fi.identity_similarity(emb, x, x), 1.0, atol=1e-9)
    # the fixed landmark box on the crop reproduces dlib's standard pipeline (its HOG detector and
    # the 5-point landmarks on the full 178x218 photo, then the descriptor)
    import dlib
    from maae_tf.data.faces import shape_model_path

    predictor = dlib.shape_predictor(shape_model_path(5))
    recogniser = dlib.face_recognition_model_v1(os.path.join(os.path.dirname(shape_model_path(5)),
                                                             fi.RECOGNITION_MODEL))
    detector = dlib.get_frontal_face_detector()
    agree = []
    for path, crop in zip(fi.image_files(SAMPLE_IMAGES, 8), crops):
        photo = read_image(path)
        found = detector(photo, 1)
        if found:
            standard = np.array(recogniser.compute_face_descriptor(photo, predictor(photo, found[0])))
            agree.append(fi.cosine_similarity(standard[None], emb.embed(crop / 127.5 - 1.0))[0])
    assert len(agree) >= 4 and np.mean(agree) > 0.99, agree
    # no face at all: the fixed landmark box still gives an embedding (it never fails)
    flat = emb.embed(np.zeros((40, 40, 3), np.float32))
    np.testing.assert_allclose(np.linalg.norm(flat, axis=1), 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------------ CLI
def _cli(*args):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "maae_tf.face_identity", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def _write_faces(folder, n=3):
    """n aligned-size (178x218) synthetic 'faces': ellipses of different colours on grey."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((218, 178, 3), 120, np.uint8)
        cv2.ellipse(img, (89, 111), (45, 60), 0, 0, 360, tuple(int(v) for v in rng.integers(0, 255, 3)), -1)
        cv2.imwrite(str(folder / f"{i + 1:06d}.jpg"), img)
    return folder


@pytest.mark.parametrize("embedder", ["dlib", "training"])
def test_cli_writes_figures(tmp_path, embedder):
    if embedder == "dlib":
        _dlib_or_skip()
    folder = _write_faces(tmp_path / "faces")
    out = tmp_path / "out" / "identity.json"
    args = [f"--images={folder}", "--image_size=64", f"--out={out}", f"--embedder={embedder}"]
    if embedder == "training":
        args.append("--identity_source=random")
    proc = _cli(*args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(KEYS) <= set(figures) and figures["num_images"] == 3 and figures["image_size"] == 64
    assert "AUC" in proc.stdout and "images/s" in proc.stdout


def test_cli_missing_or_empty_folder(tmp_path):
    proc = _cli(f"--images={tmp_path / 'nowhere'}")
    assert proc.returncode == 2 and "error:" in proc.stderr and "nowhere" in proc.stderr
    (tmp_path / "empty").mkdir()
    proc = _cli(f"--images={tmp_path / 'empty'}")
    assert proc.returncode == 2 and "error: no images" in proc.stderr


@pytest.mark.parametrize("damage", ["truncated", "not_a_jpeg"])
def test_cli_names_a_corrupt_image(tmp_path, damage):
    folder = _write_faces(tmp_path / "faces")
    bad = folder / "000002.jpg"
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"<html>not a photo</html>")
    proc = _cli(f"--images={folder}", "--embedder=dlib")
    assert proc.returncode == 2 and "error:" in proc.stderr and "000002.jpg" in proc.stderr
