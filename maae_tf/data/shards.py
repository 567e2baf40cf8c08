"""The prepared-shards source: the records of a prepared folder (`maae_tf.data.records`) for
`maae_tf.data.pipeline`, as raw elements (serialized records) and their decoder.

The records of a split are FILTERED on their stored labels, split and key before anything is
decoded (`keep_fn`), so a dropped record's image bytes are never decoded.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from maae_tf import attributes
from maae_tf.data import crop, records, splits

_FILE_EPOCHS = 16  # seeded permutations of the shard list per pass of the file stream


def selection(config, split: str):
    """What `split` keeps, and how many positives / negatives of config.attr it holds.

    Returns (rule, n_pos, n_neg); rule is ("official", code, -2 for all) or ("paper", mix, t_pos,
    t_neg, split): what `keep_fn` tests on each record.
    """
    splits.check_split(split)
    column = attributes.index(attributes.resolve(config.attr))
    files, labels, official, keys = records.read_index(config.data_dir)
    positive = labels[:, column] == 1
    if config.get("split_protocol", "official") == "paper":
        n_test = int(config.split_test_per_attribute)
        keep = splits.paper_keep(keys, positive, split, n_test, config.seed)
        t_pos, t_neg = splits.paper_test_thresholds(keys, positive, n_test, config.seed)
        rule = ("paper", splits.seed_mix(config.seed), t_pos, t_neg, split)
    else:
        keep = np.ones(len(files), bool) if split == "all" else official == splits.SPLITS[split]
        rule = ("official", -2 if split == "all" else splits.SPLITS[split])
    return rule, int((keep & positive).sum()), int((keep & ~positive).sum())


def meta_features():
    """The features `keep_fn` parses: labels, split and key, not the image."""
    return {"labels": tf.io.FixedLenFeature([records.NUM_ATTRS], tf.int64),
            "split": tf.io.FixedLenFeature([], tf.int64),
            "key": tf.io.FixedLenFeature([], tf.int64)}


def all_features():
    """Every feature of a record (the format of `maae_tf.data.records`)."""
    return {**meta_features(),
            "image": tf.io.FixedLenFeature([], tf.string),
            "mask": tf.io.FixedLenFeature([], tf.string),
            "identity": tf.io.FixedLenFeature([], tf.int64),
            "file": tf.io.FixedLenFeature([], tf.string),
            "mask_source": tf.io.FixedLenFeature([], tf.string)}


def keep_fn(rule, column: int, side: int | None):
    """A predicate on a serialized record: in the split (and, when `side` is 0/1, of that label).
    It parses only labels/split/key: the image bytes are never decoded for a dropped record."""
    features = meta_features()

    def keep(serialized):
        meta = tf.io.parse_single_example(serialized, features)
        label = meta["labels"][column]
        if rule[0] == "official":
            ok = tf.constant(True) if rule[1] == -2 else tf.equal(meta["split"], rule[1])
        else:
            _, mix, t_pos, t_neg, split = rule
            score = tf.bitwise.bitwise_xor(meta["key"], tf.constant(mix, tf.int64))
            test = tf.where(tf.equal(label, 1), score <= t_pos, score <= t_neg)
            ok = tf.constant(True) if split == "all" else (test if split == "test" else tf.logical_not(test))
        if side is not None:
            ok = tf.logical_and(ok, tf.equal(label, side))
        return ok

    return keep


def decode_record(serialized, config, prepared_size: int, masks: bool = True):
    """(image [S, S, 3] float32 in [-1, 1], mask [S, S, 1] float32 in [0, 1] (1 = background),
    labels [40] float32 0/1) of one serialized record; S = config.image_size. With `masks` False
    the mask is zeros, its bytes left undecoded."""
    size = int(config.image_size)
    ex = tf.io.parse_single_example(serialized, all_features())
    image = tf.cast(tf.io.decode_jpeg(ex["image"], channels=3), tf.float32)
    mask = tf.cond(tf.logical_and(masks, tf.strings.length(ex["mask"]) > 0),
                   lambda: tf.cast(tf.io.decode_png(ex["mask"], channels=1), tf.float32),
                   lambda: tf.zeros([prepared_size, prepared_size, 1], tf.float32))
    if size != prepared_size:  # same filters as the file path's
        image = tf.image.resize(image, [size, size], method="bilinear", antialias=True)
        mask = tf.image.resize(mask, [size, size], method="area" if prepared_size >= size else "bilinear")
    image = tf.clip_by_value(image / 127.5 - 1.0, -1.0, 1.0)
    mask = tf.clip_by_value(mask / 255.0, 0.0, 1.0)
    labels = tf.cast(ex["labels"], tf.float32)
    return (tf.ensure_shape(image, [size, size, 3]), tf.ensure_shape(mask, [size, size, 1]), labels)


def check_config(config, manifest: dict) -> None:
    """ValueError when `config` asks for another crop than the records were prepared with."""
    want = crop.fractions(config)
    have = tuple(manifest["crop"])
    if any(abs(a - b) > 1e-6 for a, b in zip(want, have)):
        raise ValueError(
            f"{config.data_dir!r} was prepared with the crop (top, left, height, width) {have}, the config "
            f"asks for {want}: the prepared images are already cropped; prepare again with this crop "
            "or use the config's crop")


# --------------------------------------------------------------------------------------------
# The source: raw elements for maae_tf.data.pipeline
# --------------------------------------------------------------------------------------------


def _checked_selection(config, split: str):
    """`selection` of a finished preparation whose crop is the config's."""
    check_config(config, records.check_prepared(config.data_dir))
    return selection(config, split)


def pair_streams(config, split: str, seeds, input_context=None):
    """(negatives, positives) of `config.attr` in `split`: two endless streams of serialized
    records, each shuffled (config.shuffle_buffer) by its seed of `seeds`.

    Each side is its own stream: the shard files (a new seeded order every pass) interleaved with
    parallel reads, the records FILTERED on the split and the attribute's label before anything
    is decoded, shuffled. The file list is the dataset's source, so tf.distribute's FILE
    auto-shard policy (`distribute.distribute(..., files_sharded=True)`) gives each worker its own
    shards; `input_context` (tf.distribute.InputContext) shards the files explicitly.
    """
    rule, n_pos, n_neg = _checked_selection(config, split)
    splits.need_both_sides(config, split, n_pos, n_neg)
    column = attributes.index(attributes.resolve(config.attr))
    shards = records.shard_paths(config.data_dir)
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(shards) < input_context.num_input_pipelines:
            raise ValueError(f"{len(shards)} shard(s) for {input_context.num_input_pipelines} input pipelines: "
                             "prepare with a smaller --shard_size")
        shards = shards[input_context.input_pipeline_id::input_context.num_input_pipelines]
    buffer = max(1, int(config.shuffle_buffer))

    def stream(side, seed, count):
        # The file order: _FILE_EPOCHS seeded permutations of the shards, one after the other, then
        # repeated. A plain list (no shuffle op over the files): FILE auto-sharding takes every
        # n-th entry of it, so the workers split each pass disjointly; a shuffle op there made
        # tf.data read one file twice at once on a worker with fewer files than the buffer.
        rng = np.random.default_rng(seed)
        order = [shards[i] for _ in range(_FILE_EPOCHS) for i in rng.permutation(len(shards))]
        files = tf.data.Dataset.from_tensor_slices(order).repeat()
        ds = files.interleave(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20),
                              cycle_length=min(len(shards), 8), block_length=1,
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        ds = ds.filter(keep_fn(rule, column, side))
        return ds.shuffle(min(buffer, count), seed=seed, reshuffle_each_iteration=True)

    return stream(0, seeds[0], n_neg), stream(1, seeds[1], n_pos)


def ordered(config, split: str, limit: int | None = None):
    """Serialized records of the first `limit` images of `split` (all when None), in shard
    (= sorted file) order; ValueError when the split has no images."""
    rule, n_pos, n_neg = _checked_selection(config, split)
    if n_pos + n_neg == 0:
        raise ValueError(f"the {split!r} split of {config.data_dir!r} ({config.get('split_protocol', 'official')} "
                         "protocol) has no images")
    column = attributes.index(attributes.resolve(config.attr))
    ds = tf.data.Dataset.from_tensor_slices(records.shard_paths(config.data_dir))
    ds = ds.flat_map(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20))
    ds = ds.filter(keep_fn(rule, column, None))
    return ds if limit is None else ds.take(int(limit))


def decoder(config, masks: bool = True):
    """The function that decodes a serialized record into {"image", "mask", "labels"} (`decode_record`);
    with `masks` False every mask is zeros and no stored mask is decoded."""
    size = int(records.read_manifest(config.data_dir)["size"])

    def decode(serialized):
        image, mask, labels = decode_record(serialized, config, size, masks)
        return {"image": image, "mask": mask, "labels": labels}

    return decode
