"""Differentiable augmentation of everything D sees (DiffAugment, Zhao et al., NeurIPS 2020).

With a few hundred real faces of a class (the dev set keeps 437 blond training faces once the
GAN's test images are out), D learns them by heart and its gradient stops telling G anything
general. Translating and cutting out the same way for real faces and edits, in D's step and in
G's, keeps D from memorising while G still gets gradients through the (differentiable) transform.
Colour transforms are left out on purpose: colour is what a hair-colour edit changes.

`augment(images, policy, uniform)` takes the policy as a comma-separated string ("translation",
"cutout") and `uniform(kind, n)`, a source of per-image U[0, 1) draws (`MAAE.noise`), so that the
draws are stateless and a resumed run repeats them.
"""

from __future__ import annotations

import tensorflow as tf

POLICIES = ("translation", "cutout")
TRANSLATION = 1 / 8  # of the image side, each way (DiffAugment's setting)
CUTOUT = 1 / 2  # side of the square cut out, of the image side (DiffAugment's setting)


def parse(policy: str) -> tuple[str, ...]:
    """The policy's parts, checked against POLICIES ("" = no augmentation)."""
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"loss.d_augment: unknown augmentation {unknown[0]!r} (choose from {', '.join(POLICIES)})")
    return parts


def _offsets(u, limit: int):
    """Per-image integer offsets in [-limit, limit] from U[0, 1) draws."""
    return tf.cast(tf.floor(u * (2 * limit + 1)), tf.int32) - limit


def translate(images, u_rows, u_cols, ratio: float = TRANSLATION):
    """Shifts each image by its own offset (zero padding), as two gathers: differentiable in images."""
    size = images.shape[1]
    pad = max(1, int(round(size * ratio)))
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    base = tf.range(size)[None, :] + pad
    rows = base + _offsets(u_rows, pad)[:, None]
    cols = base + _offsets(u_cols, pad)[:, None]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, cols, axis=2, batch_dims=1)


def cutout(images, u_rows, u_cols, ratio: float = CUTOUT):
    """Zeroes one square of side ratio·S per image, centred anywhere in the image (clipped at the
    border)."""
    size = images.shape[1]
    side = int(round(size * ratio))
    grid = tf.range(size)[None, :]

    def inside(u):  # [N, S]: this axis's pixels in the square
        start = tf.cast(tf.floor(u * size), tf.int32)[:, None] - side // 2
        return tf.logical_and(grid >= start, grid < start + side)

    cut = tf.logical_and(inside(u_rows)[:, :, None], inside(u_cols)[:, None, :])
    return images * tf.cast(tf.logical_not(cut), images.dtype)[..., None]


def augment(images, policy: tuple[str, ...], uniform):
    """images with each part of `policy` applied; uniform(kind, n) -> U[0, 1) [n] draws."""
    n = tf.shape(images)[0]
    for i, part in enumerate(policy):
        u_rows, u_cols = uniform(2 * i, n), uniform(2 * i + 1, n)
        images = (translate if part == "translation" else cutout)(images, u_rows, u_cols)
    return images
