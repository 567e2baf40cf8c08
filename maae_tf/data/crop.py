"""The training crop: a window of CelebA's aligned photo given relative to the photo's size (top,
left, height, width), so that half-size copies crop the same face. One rule for every reader:
`window` in pixels here (NumPy, dataset preparation) and `window_tf` inside tf.data
(`maae_tf.data.celeba`) round the same way (half to even) and clip the same way."""

from __future__ import annotations

import numpy as np


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


def window(h: int, w: int, fractions) -> tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of an h×w image."""
    top_f, left_f, height_f, width_f = fractions
    top = int(np.clip(np.round(top_f * h), 0, h - 1))
    left = int(np.clip(np.round(left_f * w), 0, w - 1))
    height = int(np.clip(np.round(height_f * h), 1, h - top))
    width = int(np.clip(np.round(width_f * w), 1, w - left))
    return top, left, height, width


def window_tf(shape, fractions):
    """`window` as an int32 tensor [top, left, height, width], for an image of `shape` [H, W, ...]
    inside a tf.data map."""
    import tensorflow as tf  # only the tf.data readers need it; preparation's workers do not

    # float64 as NumPy computes: in float32 a product just off .5 can round the other way
    top_f, left_f, height_f, width_f = (tf.constant(f, tf.float64) for f in fractions)
    h = tf.cast(shape[0], tf.float64)
    w = tf.cast(shape[1], tf.float64)
    top = tf.clip_by_value(tf.cast(tf.round(top_f * h), tf.int32), 0, shape[0] - 1)
    left = tf.clip_by_value(tf.cast(tf.round(left_f * w), tf.int32), 0, shape[1] - 1)
    height = tf.clip_by_value(tf.cast(tf.round(height_f * h), tf.int32), 1, shape[0] - top)
    width = tf.clip_by_value(tf.cast(tf.round(width_f * w), tf.int32), 1, shape[1] - left)
    return tf.stack([top, left, height, width])
