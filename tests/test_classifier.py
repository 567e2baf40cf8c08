"""Tests of maae_tf.classifier (the dataset's attribute classifier) and the maae_tf.train_classifier
command line (CPU, tiny: 32 px, narrow, 30 steps)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from maae_tf import attributes, classifier
from maae_tf.config import base_config
from maae_tf.data import celeba

from conftest import TINY_ATTR, TINY_SPLITS, write_tiny_celeba  # noqa: E402  (tests/ is on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOUTH = attributes.resolve(TINY_ATTR)
STEPS, BATCH, WIDTH = 30, 8, 0.125


def tiny_config(data_dir, image_size=32):
    c = base_config()
    c.attr = TINY_ATTR
    c.data_dir = str(data_dir)
    c.image_size = image_size
    c.shuffle_buffer = 64
    c.eval.classifier_steps = STEPS
    c.eval.classifier_batch = BATCH
    return c


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test caches its classifiers under its own tmp folder, never under ~/.cache."""
    monkeypatch.setenv("MAAE_TF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_classifier_learns_an_obvious_colour_and_is_deterministic(tiny_celeba):
    cfg = tiny_config(tiny_celeba)
    model = classifier.train_classifier(cfg, [TINY_ATTR], steps=STEPS, batch=BATCH, seed=3, width=WIDTH)
    assert model.output_shape == (None, 1)
    acc = classifier.accuracy(model, cfg, [TINY_ATTR], split="test", details=True)
    assert acc[MOUTH]["num_images"] == TINY_SPLITS[2]
    assert acc[MOUTH]["accuracy"] >= 0.9, acc  # chance: 0.5 (the test split is balanced)
    again = classifier.train_classifier(cfg, [TINY_ATTR], steps=STEPS, batch=BATCH, seed=3, width=WIDTH)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert classifier.build_classifier(32, 40).output_shape == (None, 40)


def test_default_attrs_dir_and_column(tiny_celeba, private_cache, tmp_path):
    cfg = tiny_config(tiny_celeba)
    attrs = classifier.default_attrs(cfg)
    assert MOUTH in attrs and attrs == [a for a in attributes.CELEBA_ATTRIBUTES if a in attrs]
    folder = classifier.default_dir(cfg)
    assert os.path.dirname(folder) == str(private_cache / "classifiers")
    assert re.fullmatch(r"celeba-[0-9a-f]{8}-32px", os.path.basename(folder)), folder
    assert classifier.default_dir(tiny_config(tiny_celeba, 64)) != folder
    (tmp_path / "link").symlink_to(tiny_celeba, target_is_directory=True)
    assert classifier.default_dir(tiny_config(tmp_path / "link")) == folder  # one dataset, one classifier
    cfg.crop_top = 0.0
    assert classifier.default_dir(cfg) != folder  # another crop, another classifier
    cfg.eval.classifier_dir = str(tmp_path / "mine")
    assert classifier.default_dir(cfg) == str(tmp_path / "mine")

    info = {"attrs": ["Blond_Hair", MOUTH]}
    assert classifier.column(info, "mouth_open") == 1 and classifier.column(info, "blond") == 0
    with pytest.raises(ValueError, match="Smiling.*Blond_Hair, Mouth_Slightly_Open"):
        classifier.column(info, "smile")
    with pytest.raises(ValueError, match="unknown attribute"):
        classifier.column(info, "no_such_attribute")


def test_for_dataset_trains_once_reuses_and_retrains(tmp_path):
    # a private copy where Bald is negative on every training image: not in default_attrs
    root = write_tiny_celeba(tmp_path / "data" / "celeba")
    attr_file = root / celeba.ATTR_FILE
    lines = attr_file.read_text().splitlines()
    for i in range(2, 2 + TINY_SPLITS[0]):
        name, *values = lines[i].split()
        values[attributes.index("Bald")] = "-1"
        lines[i] = name + " " + " ".join(f"{int(v):2d}" for v in values)
    attr_file.write_text("\n".join(lines) + "\n")
    cfg = tiny_config(root)
    assert "Bald" not in classifier.default_attrs(cfg)
    kw = dict(width=WIDTH)

    model, info = classifier.for_dataset(cfg, [TINY_ATTR], **kw)
    assert info["reused"] is False and info["attrs"] == classifier.default_attrs(cfg)
    assert len(info["attrs"]) == 39 and info["steps"] == STEPS and info["batch"] == BATCH
    assert info["path"] == os.path.join(classifier.default_dir(cfg), classifier.WEIGHTS_FILE)
    assert os.path.isfile(info["path"]) and info["train_seconds"] > 0
    assert set(info["test_accuracy"]) == set(info["attrs"]) == set(info["test_details"])
    assert info["test_details"][MOUTH]["num_images"] == TINY_SPLITS[2]
    assert info["test_accuracy"][MOUTH] >= 0.9, info["test_accuracy"]  # the colour is obvious
    assert info["mean_test_accuracy"] == pytest.approx(np.mean(list(info["test_accuracy"].values())))
    images = next(iter(celeba.images_dataset(cfg, "test", batch_size=12)))["image"]
    j = classifier.column(info, TINY_ATTR)
    logits = classifier.predict_logits(model, images)
    np.testing.assert_allclose(classifier.probabilities(model, images), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_array_equal(classifier.judge(model, images, j), logits[:, j] > 0)

    again, info2 = classifier.for_dataset(cfg, [TINY_ATTR], **kw)           # the same request
    assert info2["reused"] is True and info2["attrs"] == info["attrs"]
    assert info2["test_details"] == info["test_details"]
    np.testing.assert_array_equal(classifier.predict_logits(again, images), logits)
    assert classifier.for_dataset(cfg, ["smiling", "blond_hair"], **kw)[1]["reused"] is True  # a subset
    assert classifier.for_dataset(cfg, **kw)[1]["reused"] is True          # what the cache holds

    _, info3 = classifier.for_dataset(cfg, ["bald", TINY_ATTR], **kw)      # a superset: retrains
    assert info3["reused"] is False and len(info3["attrs"]) == 40
    assert info3["attrs"] == list(attributes.CELEBA_ATTRIBUTES)
    _, info4 = classifier.for_dataset(cfg, **kw)
    assert info4["reused"] is True and info4["attrs"] == info3["attrs"]

    with pytest.raises(FileNotFoundError, match=r"(?s)no attribute classifier.*train_classifier --data_dir"):
        classifier.for_dataset(cfg, steps=STEPS + 1, train_if_missing=False, **kw)
    _, info5 = classifier.for_dataset(cfg, steps=STEPS + 1, **kw)         # another setting: retrains
    assert info5["reused"] is False and info5["steps"] == STEPS + 1
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "elsewhere")):
        classifier.for_dataset(cfg, cache_dir=str(tmp_path / "elsewhere"), train_if_missing=False, **kw)


def _cli(*args, cache):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", MAAE_TF_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "maae_tf.train_classifier", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(tiny_celeba, tmp_path, private_cache):
    args = (f"--data_dir={tiny_celeba}", "--image_size=32", f"--steps={STEPS}", f"--batch={BATCH}",
            f"--width={WIDTH}", "--attrs=mouth_open,blond_hair", f"--out={tmp_path / 'report'}")
    proc = _cli(*args, cache=private_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "trained in" in out and "on positives" in out and "on negatives" in out
    rows = [line for line in out.splitlines() if line.split(" ")[0] in attributes.CELEBA_ATTRIBUTES]
    assert [r.split(" ")[0] for r in rows] == list(attributes.CELEBA_ATTRIBUTES), out  # all it covers
    mouth = rows[attributes.index(MOUTH)]
    assert re.fullmatch(rf"{MOUTH}(\s+\d+\.\d %){{3}}\s+{TINY_SPLITS[2]}\s+6", mouth), mouth
    assert "mean accuracy over 40 attributes" in out and "94.5 %" in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"| {MOUTH} |" in report and "94.5 %" in report
    cfg = tiny_config(tiny_celeba)
    assert os.path.isfile(os.path.join(classifier.default_dir(cfg), classifier.WEIGHTS_FILE))

    # the in-process API reuses what the command trained
    _, info = classifier.for_dataset(cfg, [TINY_ATTR], width=WIDTH)
    assert info["reused"] is True


def test_cli_bad_input_exits_2(tmp_path, private_cache, tiny_celeba):
    proc = _cli(f"--data_dir={tmp_path / 'nope'}", cache=private_cache)
    assert proc.returncode == 2 and "error:" in proc.stderr and "nope" in proc.stderr, proc.stderr[-2000:]
    proc = _cli(f"--data_dir={tiny_celeba}", "--attrs=no_such_attribute", cache=private_cache)
    assert proc.returncode == 2 and "error: unknown attribute" in proc.stderr, proc.stderr[-2000:]
    assert not private_cache.exists()
