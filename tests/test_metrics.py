"""Laws of the SSIM and sweep-monotonicity metrics of maae_tf.evaluation.metrics (CPU, tiny)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from maae_tf.evaluation import metrics


def _pair(seed, shape=(2, 24, 24, 3), noise=0.2):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, shape)
    return a, np.clip(a + rng.normal(0, noise, shape), -1, 1)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), noise=st.floats(0.01, 1.0))
def test_ssim_equals_tf_image_ssim(seed, noise):
    a, b = _pair(seed, noise=noise)
    ref = tf.image.ssim(tf.constant((a + 1) / 2), tf.constant((b + 1) / 2), max_val=1.0).numpy()
    np.testing.assert_allclose(metrics.ssim(a, b), ref, atol=1e-6)


def test_ssim_of_identical_images_is_one_and_symmetric():
    a, b = _pair(1)
    np.testing.assert_allclose(metrics.ssim(a, a), 1.0, atol=1e-12)
    np.testing.assert_allclose(metrics.ssim(a, b), metrics.ssim(b, a), atol=1e-12)
    assert np.all(metrics.ssim(a, b) < 1.0)


def test_masked_ssim_sees_only_the_background():
    a, _ = _pair(2, shape=(1, 32, 32, 3))
    b = a.copy()
    b[:, :, 16:] = -b[:, :, 16:]                      # the right half changes completely
    mask = np.zeros((1, 32, 32, 1))
    mask[:, :, :8] = 1                                # background: the left quarter, > 5 px from the change
    assert metrics.ssim(a, b, mask)[0] == pytest.approx(1.0, abs=1e-12)
    assert metrics.ssim(a, b)[0] < 0.9
    np.testing.assert_allclose(metrics.ssim(a, b, np.ones((1, 32, 32, 1))), metrics.ssim(a, b), atol=1e-12)
    assert np.isnan(metrics.ssim(a, b, np.zeros((1, 32, 32, 1)))[0])


def test_ssim_errors_name_the_problem():
    with pytest.raises(ValueError, match="shapes differ"):
        metrics.ssim(np.zeros((1, 16, 16, 3)), np.zeros((1, 16, 17, 3)))
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ssim(np.zeros((1, 8, 8, 3)), np.zeros((1, 8, 8, 3)))


@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.lists(st.floats(0, 1), min_size=3, max_size=3), min_size=1, max_size=6))
def test_monotonic_share_counts_sorted_rows(rows):
    s = np.array(rows)
    share, n = metrics.monotonic_share(s)
    assert n == len(rows)
    assert share == pytest.approx(np.mean([list(r) == sorted(r) for r in rows]))
    # sorting every row makes all of them monotonic; a tolerance of 1 forgives any drop in [0, 1]
    assert metrics.monotonic_share(np.sort(s, axis=1))[0] == 1.0
    assert metrics.monotonic_share(s, tolerance=1.0)[0] == 1.0


def test_monotonic_share_edges():
    assert metrics.monotonic_share(np.zeros((0, 5))) == (None, 0)
    with pytest.raises(ValueError, match="T >= 2"):
        metrics.monotonic_share(np.zeros((3, 1)))
    assert metrics.monotonic_share([[0.1, 0.09, 0.5]], tolerance=0.02) == (1.0, 1)
    assert metrics.monotonic_share([[0.1, 0.05, 0.5]], tolerance=0.02) == (0.0, 1)
