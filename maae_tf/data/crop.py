"""The training crop: a window of CelebA's aligned photo given relative to the photo's size (top,
left, height, width), so that half-size copies crop the same face. The rule (`rule`) is written
once and run two ways: on Python numbers for dataset preparation (`window`, NumPy) and on tensors
inside tf.data (`window_tf`); both round half to even in float64 and clip the same way."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def fractions(config) -> tuple[float, float, float, float]:
    """(top, left, height, width) of `config`'s crop; ValueError when it leaves the image."""
    top, left = float(config.crop_top), float(config.crop_left)
    height, width = float(config.crop_height), float(config.crop_width)
    eps = 1e-6
    if (min(top, left) < 0 or min(height, width) <= 0 or top + height > 1 + eps
            or left + width > 1 + eps):
        raise ValueError(
            "the crop (crop_top, crop_left, crop_height, crop_width, relative to the image) must "
            f"lie inside the image, got ({top}, {left}, {height}, {width})")
    return top, left, height, width


def rule(h, w, fractions, scale, clip):
    """(top, left, height, width) in pixels of an h×w image.

    Args:
      h, w: the image's height and width (ints, or int32 scalar tensors).
      fractions: (top, left, height, width) relative to the image.
      scale: scale(fraction, side) -> round(fraction * side) as an integer, half to even.
      clip: clip(value, low, high) -> value clipped to [low, high].
    """
    top_f, left_f, height_f, width_f = fractions
    top = clip(scale(top_f, h), 0, h - 1)
    left = clip(scale(left_f, w), 0, w - 1)
    height = clip(scale(height_f, h), 1, h - top)
    width = clip(scale(width_f, w), 1, w - left)
    return top, left, height, width


def window(h: int, w: int, fractions) -> tuple[int, int, int, int]:
    """`rule` in NumPy: (top, left, height, width) in pixels of an h×w image."""
    return rule(int(h), int(w), fractions,
                scale=lambda f, side: int(np.round(np.float64(f) * side)),
                clip=lambda v, low, high: int(np.clip(v, low, high)))


def window_tf(shape, fractions):
    """`rule` in TensorFlow: an int32 tensor [top, left, height, width] for an image of `shape`
    [H, W, ...], usable inside a tf.data map."""
    def scale(f, side):
        # float64 as NumPy computes: in float32 a product just off .5 can round the other way
        product = tf.constant(f, tf.float64) * tf.cast(side, tf.float64)
        return tf.cast(tf.round(product), tf.int32)

    shape = tf.convert_to_tensor(shape, tf.int32)
    return tf.stack(rule(shape[0], shape[1], fractions, scale, tf.clip_by_value))
