"""DiffAugment of D's inputs (maae_tf/model/augment.py): translation and cutout against NumPy, gradients
through them, and a training step that uses them."""
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings, strategies as st

from conftest import tiny_config, tiny_spec
from maae_tf.model import augment
from maae_tf.training.settings import check


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 1000), st.sampled_from([8, 16, 32]))
def test_translation_is_a_zero_padded_shift(seed, size):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (3, size, size, 2)).astype(np.float32)
    u_r, u_c = rng.uniform(size=3).astype(np.float32), rng.uniform(size=3).astype(np.float32)
    got = augment.translate(tf.constant(x), tf.constant(u_r), tf.constant(u_c)).numpy()
    pad = max(1, round(size * augment.TRANSLATION))
    for i in range(3):
        dr = int(np.floor(u_r[i] * (2 * pad + 1))) - pad
        dc = int(np.floor(u_c[i] * (2 * pad + 1))) - pad
        padded = np.pad(x[i], [(pad, pad), (pad, pad), (0, 0)])
        want = padded[pad + dr:pad + dr + size, pad + dc:pad + dc + size]
        np.testing.assert_array_equal(got[i], want)


def test_cutout_zeroes_one_square_and_keeps_the_rest():
    x = tf.ones((2, 32, 32, 3))
    got = augment.cutout(x, tf.constant([0.5, 0.0]), tf.constant([0.5, 0.99])).numpy()
    side = round(32 * augment.CUTOUT)
    assert (got[0] == 0).all(axis=-1).sum() == side * side  # a full square in the middle
    assert (got[1] == 0).all(axis=-1).sum() == (side // 2) * (side // 2 + 1)  # clipped in a corner
    assert set(np.unique(got)) <= {0.0, 1.0}


def test_gradients_pass_through_the_augmentation():
    x = tf.Variable(tf.random.uniform((2, 16, 16, 3)))
    draws = lambda kind, n: tf.fill([n], 0.3 + 0.1 * kind)
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(augment.augment(x, ("translation", "cutout"), draws))
    g = tape.gradient(y, x).numpy()
    assert g.max() == 1.0 and g.min() == 0.0  # kept pixels pass 1, cut or shifted-out ones 0


def test_policies_are_checked():
    c = tiny_config(**{"loss.d_augment": "translation,cutout"})
    check(c)
    c.loss.d_augment = "translation,colour"
    with pytest.raises(ValueError, match="colour"):
        check(c)


def test_a_training_step_with_augmented_d():
    import keras
    from maae_tf.model.maae import build_model

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(**{"identity.source": "none", "loss.alpha_id": 0.0,
                                 "loss.d_augment": "translation,cutout"}))
    rng = np.random.default_rng(0)
    x = lambda: tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32))
    batch = {"x1": x(), "x2": x(), "m1": tf.ones((2, 32, 32, 1)), "m2": tf.ones((2, 32, 32, 1))}
    logs = m.train_step(batch)
    assert np.isfinite(float(logs["d_loss"])) and np.isfinite(float(logs["g_loss"]))
