"""The one data pipeline: balanced pairs for training and ordered images for evaluation, from
either source of a dataset folder.

Sources (chosen by the folder): a prepared folder (it holds manifest.json, `python -m
maae_tf.data.prepare`) is read from its TFRecord shards (`maae_tf.data.shards`), any other from
the CelebA release files (`maae_tf.data.celeba`). A source gives raw elements (a file path, a
serialized record: cheap to shuffle) and a decoder of them into {"image", "mask", "labels"}; the
pipeline zips, decodes, batches and prefetches both alike. Splits and shuffle seeds follow one
rule for both (`maae_tf.data.splits`).
"""

from __future__ import annotations

import ml_collections
import tensorflow as tf

from maae_tf.data import celeba, layout, records, shards, splits


def source(config: ml_collections.ConfigDict):
    """The source module of `config.data_dir`: `shards` for a prepared folder, else `celeba`."""
    return shards if records.is_prepared(config.data_dir) else celeba


def check_layout(data_dir: str) -> None:
    """FileNotFoundError / ValueError naming what is missing or wrong in `data_dir`: a prepared folder
    (finished, shards whole) or the CelebA release layout, with the layout expected."""
    if records.is_prepared(data_dir) or records.is_unfinished(data_dir):
        records.check_prepared(data_dir)
    else:
        layout.check_layout(data_dir)


def explain_decode_error(error: tf.errors.OpError, config) -> str | None:
    """One line naming the image file(s) behind a decode error of the release files; None when
    `error` is not about an image file (or the folder is prepared: its records are checked)."""
    return None if records.is_prepared(config.data_dir) else celeba.explain_decode_error(error, config)


def pairs_dataset(config: ml_collections.ConfigDict, split: str = "train", input_context=None) -> tf.data.Dataset:
    """Endless balanced batches {"x1": negatives, "x2": positives, "m1", "m2"} of `config.attr`.

    x1/x2: [B, S, S, 3] float32 in [-1, 1]; m1/m2: [B, S, S, 1] in [0, 1] (1 = background);
    B = config.batch_size, S = config.image_size. Two shuffled, repeated streams (one per side,
    each seeded from config.seed by `splits.stream_seeds`) zipped, then decoded. `input_context`
    (tf.distribute.InputContext) gives each input pipeline its own shard files of a prepared folder.
    """
    src = source(config)
    negatives, positives = src.pair_streams(config, split, splits.stream_seeds(config.seed, 2), input_context)
    decode = src.decoder(config)

    def load_pair(a, b):
        x1, x2 = decode(a), decode(b)
        return {"x1": x1["image"], "x2": x2["image"], "m1": x1["mask"], "m2": x2["mask"]}

    ds = tf.data.Dataset.zip((negatives, positives))
    ds = ds.map(load_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(config.batch_size), drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_dataset(config: ml_collections.ConfigDict, split: str = "test", limit: int | None = None,
                   batch_size: int | None = None) -> tf.data.Dataset:
    """Finite, ordered batches {"image", "mask", "labels" ([b, 40] float32 0/1)} for evaluation.

    The first `limit` images of `split` (all when None), in the order of the attribute file (of
    the shards, sorted by file name, for a prepared folder); the last partial batch is kept.
    `batch_size` defaults to config.batch_size.
    """
    src = source(config)
    ds = src.ordered(config, split, limit)
    ds = ds.map(src.decoder(config), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size or config.batch_size), drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)
