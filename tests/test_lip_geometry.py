"""Tests of maae_tf.evaluation.lip_geometry (the lips' geometry the mouth's judge adds) and of the
judge that adds it (`classifier.for_dataset` with eval.classifier_lip_geometry)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_ATTR, tiny_config
from maae_tf import attributes
from maae_tf.data import layout as release
from maae_tf.data import pipeline
from maae_tf.evaluation import classifier, classifier_training, lip_geometry

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "celeba-sample"
MOUTH = attributes.resolve(TINY_ATTR)


def _objective(term: lip_geometry.LogisticTerm, x, y, l2: float) -> float:
    """The class-balanced, L2-penalised log-loss the fit minimises, computed directly."""
    z = term.logits(x)
    c = np.where(y, len(y) / (2.0 * y.sum()), len(y) / (2.0 * (~y).sum()))
    return float(np.sum(c * (np.logaddexp(0, z) - y * z)) + 0.5 * l2 * np.sum(term.weights ** 2))


def test_the_logistic_term_is_the_balanced_penalised_optimum():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)) * [1.0, 10.0, 0.1, 1.0] + [0.0, 5.0, -2.0, 0.0]
    y = x[:, 0] + 0.3 * x[:, 1] - 1.5 + rng.normal(size=300) > 0
    x[:, 3] = 7.0  # a constant feature gets no weight and breaks nothing
    term = lip_geometry.LogisticTerm.fit(x, y, l2=1.0)
    assert term.weights[3] == 0.0
    best = _objective(term, x, y, 1.0)
    for _ in range(20):  # every nearby coefficient vector does worse
        nudged = lip_geometry.LogisticTerm(term.mean, term.scale, term.weights + rng.normal(size=4) * 1e-3,
                                           term.bias + rng.normal() * 1e-3)
        assert _objective(nudged, x, y, 1.0) > best
    # each class weighs half: four copies of every positive leave the fit as it was
    more = np.concatenate([x] + [x[y]] * 3), np.concatenate([y] + [y[y]] * 3)
    again = lip_geometry.LogisticTerm.fit(*more, l2=1.0)
    assert ((again.logits(x) > 0) == (term.logits(x) > 0)).mean() > 0.97
    assert ((term.logits(x) > 0) == y).mean() > 0.85
    restored = lip_geometry.LogisticTerm.from_dict(term.to_dict())
    np.testing.assert_array_equal(restored.logits(x), term.logits(x))
    with pytest.raises(ValueError, match="both classes"):
        lip_geometry.LogisticTerm.fit(x, np.ones(len(x), bool))


@pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason=f"{SAMPLE_DIR} absent")
def test_open_mouths_have_lips_further_apart_on_real_photos():
    config = tiny_config(SAMPLE_DIR, image_size=64)
    files, labels = release.read_attributes(str(SAMPLE_DIR))
    images = np.concatenate([b["image"].numpy() for b in pipeline.images_dataset(config, "all", batch_size=32)])
    assert len(images) == len(files) == 32
    opened = labels[:, attributes.index("mouth_open")] > 0
    measured = lip_geometry.features(images)
    assert measured.shape == (32, len(lip_geometry.NAMES)) and np.isfinite(measured).all()
    gap = measured[:, lip_geometry.NAMES.index("inner_gap_middle")]
    # the 18 open mouths against the 14 closed ones: the inner lips part
    assert np.median(gap[opened]) > 2 * np.median(gap[~opened]), (gap[opened], gap[~opened])
    # the share of (open, closed) pairs in which the open mouth's gap is the wider (the AUC)
    auc = (gap[opened][:, None] > gap[~opened][None, :]).mean()
    assert auc >= 0.85, auc


def test_the_judge_adds_the_lips_geometry_when_asked(tiny_celeba, tmp_path, monkeypatch):
    monkeypatch.setenv("MAAE_TF_CACHE", str(tmp_path / "cache"))
    judge_settings = {"eval.classifier_steps": 30, "eval.classifier_batch": 8}
    plain_cfg = tiny_config(tiny_celeba, **judge_settings)
    cfg = tiny_config(tiny_celeba, **judge_settings, **{"eval.classifier_lip_geometry": True})
    judge, info = classifier.for_dataset(cfg, [TINY_ATTR], width=0.125)
    assert set(info["terms"]) == {MOUTH} and "the lips' geometry" in info["split_note"]
    assert set(info["network_test_details"]) == {MOUTH}
    images = next(iter(pipeline.images_dataset(cfg, "test", batch_size=12)))["image"].numpy()
    term = lip_geometry.LogisticTerm.from_dict(info["terms"][MOUTH])
    np.testing.assert_allclose(classifier_training.predict_logits(judge, images)[:, 0],
                               classifier_training.predict_logits(judge.network, images)[:, 0]
                               + term.logits(lip_geometry.features(images)), rtol=1e-5, atol=1e-5)
    again, info2 = classifier.for_dataset(cfg, [TINY_ATTR], width=0.125)
    assert info2["reused"] and again.terms.keys() == judge.terms.keys()
    np.testing.assert_array_equal(classifier.judge(again, images, 0), classifier.judge(judge, images, 0))
    # the same data without the switch: a judge of its own, the network alone
    plain, info3 = classifier.for_dataset(plain_cfg, [TINY_ATTR], width=0.125)
    assert not info3["reused"] and info3["terms"] == {} and info3["network_test_details"] is None
    assert plain.terms == {}
