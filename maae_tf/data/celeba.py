"""The release-files source: the images of a CelebA release layout (`maae_tf.data.layout`)
decoded by tf ops inside `Dataset.map`, so the pipeline runs in parallel without the GIL. It gives
`maae_tf.data.pipeline` its raw elements (image path, mask path, labels 0/1) and their decoder.

Corrupt files: TensorFlow's JPEG/PNG decoders fail with a message that does not name the file.
`load_example` therefore checks every file's bytes in-graph before decoding (JPEG: starts with the
SOI marker FFD8FF and has the EOI marker FFD9 in its last 64 bytes; PNG: the signature and the
IEND chunk) and fails with `tf.errors.InvalidArgumentError` whose message carries the path. That
catches the usual damage (empty, truncated, not an image at all: an HTML page, a text file). A file
whose ends are intact but whose middle is damaged still fails in the decoder without a name:
`find_corrupt_images(paths)` decodes files one by one with the same decoder and names them (call
it from an `except tf.errors.InvalidArgumentError` handler).
"""

from __future__ import annotations

import os
import re

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf import attributes
from maae_tf.data import crop, layout, splits

_TAIL_BYTES = 64  # where the end marker (JPEG EOI / PNG IEND) is looked for


# --------------------------------------------------------------------------------------------
# Decoding (tf ops, usable inside Dataset.map)
# --------------------------------------------------------------------------------------------


_MARKERS = {
    "JPEG": (b"\xff\xd8\xff", b"\xff\xd9", "missing the start marker FFD8FF or the end marker FFD9"),
    "PNG": (b"\x89PNG\r\n\x1a\n", b"IEND", "missing the PNG signature or the IEND chunk"),
}


def _checked(data: tf.Tensor, path: tf.Tensor, kind: str) -> tf.Tensor:
    """`data` after an in-graph check of its first and last bytes; the failure names `path`."""
    head, tail, hint = _MARKERS[kind]
    n = tf.strings.length(data)
    ok_head = tf.equal(tf.strings.substr(data, 0, len(head)), head)
    end = tf.io.decode_raw(tf.strings.substr(data, tf.maximum(n - _TAIL_BYTES, 0), _TAIL_BYTES),
                           tf.uint8)
    pattern = tf.constant(list(tail), tf.uint8)
    k = len(tail)
    m = tf.shape(end)[0] - k + 1
    windows = tf.stack([end[i:i + tf.maximum(m, 0)] for i in range(k)], axis=1)  # [m, k]
    ok_tail = tf.reduce_any(tf.reduce_all(tf.equal(windows, pattern), axis=1))
    assert_op = tf.debugging.Assert(
        tf.logical_and(ok_head, ok_tail),
        [f"corrupt {kind} file (empty, truncated or not a {kind}: {hint}):", path, "size", n],
        summarize=1)
    with tf.control_dependencies([assert_op]):
        return tf.identity(data)


def _load_image(path: tf.Tensor, size: int, fractions) -> tf.Tensor:
    data = _checked(tf.io.read_file(path), path, "JPEG")
    window = crop.window_tf(tf.io.extract_jpeg_shape(data), fractions)
    image = tf.io.decode_and_crop_jpeg(data, window, channels=3)
    image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
    image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
    return tf.ensure_shape(image, [size, size, 3])


def _load_mask(path: tf.Tensor, size: int, fractions) -> tf.Tensor:
    data = _checked(tf.io.read_file(path), path, "PNG")
    mask = tf.io.decode_png(data, channels=1)
    window = crop.window_tf(tf.shape(mask), fractions)
    mask = mask[window[0]:window[0] + window[2], window[1]:window[1] + window[3], :]
    # Area averaging when shrinking (3-4x faster than antialiased bilinear on one channel),
    # bilinear when enlarging (area would be nearest-neighbour there).
    mask = tf.cond(tf.reduce_min(window[2:]) >= size,
                   lambda: tf.image.resize(mask, [size, size], method="area"),
                   lambda: tf.image.resize(mask, [size, size], method="bilinear"))
    mask = tf.clip_by_value(mask / 255.0, 0.0, 1.0)
    return tf.ensure_shape(mask, [size, size, 1])


def load_example(path, mask_path, config: ml_collections.ConfigDict):
    """(image [S, S, 3] float32 in [-1, 1], mask [S, S, 1] float32 in [0, 1], 1 = background).

    `path`, `mask_path`: scalar string tensors; an empty `mask_path` gives an all-zero mask (the
    mask loss then contributes nothing). The relative crop of `config` is applied to both, then
    both are resized to S = config.image_size (image: bilinear, antialiased; mask: area when
    shrinking, bilinear when enlarging).
    """
    size = int(config.image_size)
    fractions = crop.fractions(config)
    path = tf.convert_to_tensor(path, tf.string)
    mask_path = tf.convert_to_tensor(mask_path, tf.string)
    image = _load_image(path, size, fractions)
    mask = tf.cond(tf.strings.length(mask_path) > 0,
                   lambda: _load_mask(mask_path, size, fractions),
                   lambda: tf.zeros([size, size, 1], tf.float32))
    return image, tf.ensure_shape(mask, [size, size, 1])


def find_corrupt_images(paths) -> list[tuple[str, str]]:
    """(path, error) for each file that TensorFlow's decoder rejects (eager; for diagnostics)."""
    bad = []
    for p in paths:
        p = os.fspath(p)
        try:
            data = tf.io.read_file(p)
            if p.lower().endswith(".png"):
                tf.io.decode_png(data)
            else:
                tf.io.decode_jpeg(data)
        except (tf.errors.InvalidArgumentError, tf.errors.NotFoundError) as e:
            bad.append((p, e.message.splitlines()[0] if e.message else type(e).__name__))
    return bad


_CORRUPT = re.compile(r"corrupt (JPEG|PNG) file \((.*?)\):\] \[(.*?)\] \[size\] \[(\d+)\]")


def explain_decode_error(error: tf.errors.OpError, config) -> str | None:
    """One line naming the image file(s) behind a decode error of the file-based pipeline: the
    path the in-graph check carries, else the files `find_corrupt_images` rejects among the
    dataset's images and masks. None when `error` is not about an image file."""
    m = _CORRUPT.search(error.message or "")
    if m:
        return f"{m.group(3)}: corrupt {m.group(1)} file ({m.group(2)}, {m.group(4)} bytes)"
    if not re.search(r"jpeg|png", error.message or "", re.I):
        return None
    paths, _ = layout.split_files(config, "all")
    logging.info("a decoder failed without naming its file: decoding the %d images of %s one by one",
                 len(paths), config.data_dir)
    bad = find_corrupt_images(paths + [p for p in layout.mask_paths(config.data_dir, paths) if p])
    if not bad:
        return None
    return f"{len(bad)} corrupt image file(s): " + "; ".join(f"{p} ({why})" for p, why in bad[:3])


def _masks_for(config, paths: list[str], what: str, log=logging.warning) -> list[str]:
    """The mask path of each image ("" where absent), saying once when some or all are missing."""
    masks = layout.mask_paths(config.data_dir, paths)
    have = sum(1 for m in masks if m)
    if have == 0:
        log(
            "no background masks in %s for the %s: masks are zeros and the mask loss contributes "
            "nothing", os.path.join(config.data_dir, layout.MASK_DIR), what)
    elif have < len(masks):
        log("%d of %d images of the %s have no background mask in %s: their masks are zeros",
            len(masks) - have, len(masks), what, os.path.join(config.data_dir, layout.MASK_DIR))
    return masks


# --------------------------------------------------------------------------------------------
# The source: raw elements for maae_tf.data.pipeline
# --------------------------------------------------------------------------------------------


def _elements(paths: list[str], masks: list[str], labels_pm1: np.ndarray) -> tf.data.Dataset:
    """Raw elements {"path", "mask_path", "labels" ([40] float32 0/1)} of the images, in the given order."""
    labels01 = ((labels_pm1.astype(np.float32) + 1.0) / 2.0).reshape(len(paths), len(attributes.CELEBA_ATTRIBUTES))
    return tf.data.Dataset.from_tensor_slices({"path": tf.constant(paths, tf.string, shape=[len(paths)]),
                                               "mask_path": tf.constant(masks, tf.string, shape=[len(paths)]),
                                               "labels": labels01})


def pair_streams(config: ml_collections.ConfigDict, split: str, seeds, input_context=None):
    """(negatives, positives) of `config.attr` in `split`: two endless streams of raw elements,
    each shuffled (config.shuffle_buffer) by its seed of `seeds`. `input_context` is not used:
    the files are one list, which tf.distribute's DATA auto-sharding splits."""
    del input_context
    paths, labels = layout.split_files(config, split)
    positive = labels[:, attributes.index(attributes.resolve(config.attr))] == 1
    splits.need_both_sides(config, split, int(positive.sum()), int((~positive).sum()))
    crop.fractions(config)  # fail here, not inside the pipeline
    masks = _masks_for(config, paths, f"{split!r} split")

    def stream(keep, seed):
        ds = _elements([p for p, k in zip(paths, keep) if k], [m for m, k in zip(masks, keep) if k], labels[keep])
        ds = ds.shuffle(max(1, min(int(config.shuffle_buffer), int(keep.sum()))), seed=seed,
                        reshuffle_each_iteration=True)
        return ds.repeat()

    return stream(~positive, seeds[0]), stream(positive, seeds[1])


def ordered(config: ml_collections.ConfigDict, split: str, limit: int | None = None) -> tf.data.Dataset:
    """Raw elements of the first `limit` images of `split` (all when None), in the order of the
    attribute file; empty when the split has no images."""
    paths, labels = layout.split_files(config, split)
    if limit is not None:
        paths, labels = paths[:int(limit)], labels[:int(limit)]
    crop.fractions(config)
    masks = _masks_for(config, paths, f"{split!r} split", logging.info) if paths else []
    return _elements(paths, masks, labels)


def decoder(config: ml_collections.ConfigDict, masks: bool = True):
    """The function that decodes a raw element into {"image", "mask", "labels"} (`load_example`);
    with `masks` False every mask is zeros and no mask file is read."""

    def decode(element):
        mask_path = element["mask_path"] if masks else ""
        image, mask = load_example(element["path"], mask_path, config)
        return {"image": image, "mask": mask, "labels": element["labels"]}

    return decode
