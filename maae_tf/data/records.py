"""Prepared CelebA as sharded TFRecords: the record format, the splits, and the readers.

`python -m maae_tf.data.prepare` (maae_tf/data/prepare.py) writes a prepared folder; training,
evaluation and the benchmark read it through `celeba.pairs_dataset` / `celeba.images_dataset`,
which hand over to `pairs_dataset` / `images_dataset` here when `config.data_dir` holds
`manifest.json` (docs/data.md).

A prepared folder::

    prepare.json                          the preparation's settings (a rerun must match them)
    shard-00000-of-00020.tfrecord         uncompressed TFRecord files of tf.train.Example
    shard-00000-of-00020.json             sidecar: the shard's counts, failures and label index
    ...
    manifest.json                         written last: totals (the sum of the sidecars)

One record (tf.train.Example) per image that could be read:

    image        bytes   JPEG (quality 95) of the CROPPED image, RGB, size x size
    mask         bytes   PNG, uint8 size x size, 255 = background; EMPTY when the image has no mask
                         (mask source "none" or MaskUnavailable): the reader gives zeros, as the
                         file path does for a missing mask (the mask loss then contributes nothing)
    labels       int64[40] the 40 CelebA attributes in `attributes.CELEBA_ATTRIBUTES` order,
                         0 / 1 (CelebA's -1 -> 0, 1 -> 1)
    identity     int64   identity_CelebA.txt's id, -1 when the release has no identity file
    split        int64   the official partition: 0 train, 1 val, 2 test, -1 not in the file
    key          int64   a 63-bit hash of the file name (`file_key`): the paper protocol's draw
    file         bytes   the image's file name ("000001.jpg")
    mask_source  bytes   the origin of `mask` ("files", "segmenter/dlib", "segmenter/template", ...) or "none"

Splits (`config.split_protocol`): "official" keeps the stored partition; "paper" holds out
`config.split_test_per_attribute` (1000) test images for `config.attr` from ALL images, half
positives and half negatives, drawn by seed (`paper_test_thresholds`), and trains on the rest;
that protocol has no val split. Both readers apply the same rule, and so does the file-based
`celeba.split_files`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os

import numpy as np

from maae_tf import attributes
from maae_tf.data import crop

FORMAT = "maae_tf.records/1"
MANIFEST = "manifest.json"
PARAMS = "prepare.json"
SPLIT_CODES = {"train": 0, "val": 1, "test": 2}
NUM_ATTRS = len(attributes.CELEBA_ATTRIBUTES)
_MASK63 = (1 << 63) - 1
_FILE_EPOCHS = 16  # seeded permutations of the shard list per pass of the file stream


def shard_name(k: int, n: int, ext: str = "tfrecord") -> str:
    return f"shard-{k:05d}-of-{n:05d}.{ext}"


def is_prepared(data_dir) -> bool:
    return bool(data_dir) and os.path.isfile(os.path.join(data_dir, MANIFEST))


def is_unfinished(data_dir) -> bool:
    """A folder `prepare` started and has not finished (no manifest yet)."""
    return bool(data_dir) and os.path.isfile(os.path.join(data_dir, PARAMS)) and not is_prepared(data_dir)


# --------------------------------------------------------------------------------------------
# The paper protocol's draw (shared with the file-based reader)
# --------------------------------------------------------------------------------------------


def file_key(name: str) -> int:
    """A 63-bit hash of an image's file name (stored in each record as `key`)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little") & _MASK63


def stream_seeds(seed: int, n: int) -> list[int]:
    """`n` shuffle seeds drawn from the run's `seed`: one per stream of pairs (negatives, positives),
    the same for both sources, so files and their TFRecords give the same pairs."""
    state = np.random.SeedSequence([int(seed), 0x6D616165]).generate_state(n, dtype=np.uint32)
    return [int(s) & 0x7FFFFFFF for s in state]


def _seed_mix(seed: int) -> int:
    return file_key(f"maae_tf paper split, seed {int(seed)}")


def paper_test_counts(n_pos: int, n_neg: int, n_test: int) -> tuple[int, int]:
    """Test images drawn among the positives and negatives: n_test/2 of each, at most half of a
    class (a rare attribute keeps half its positives for training), negatives fill up to n_test."""
    k_pos = min(n_test // 2, n_pos // 2)
    k_neg = min(n_test - k_pos, n_neg // 2)
    return k_pos, k_neg


def paper_test_thresholds(keys: np.ndarray, positive: np.ndarray, n_test: int, seed: int) -> tuple[int, int]:
    """(threshold for positives, for negatives): an image is in the test split iff
    `key XOR mix(seed) <= threshold` of its class. The score is a bijection of the file-name
    hash, so the draw depends only on the names, the labels and the seed (not on file order)."""
    score = np.asarray(keys, np.int64) ^ np.int64(_seed_mix(seed))
    positive = np.asarray(positive, bool)
    k_pos, k_neg = paper_test_counts(int(positive.sum()), int((~positive).sum()), int(n_test))

    def thr(s, k):
        return int(np.partition(s, k - 1)[k - 1]) if k > 0 else -1

    return thr(score[positive], k_pos), thr(score[~positive], k_neg)


def paper_split_mask(filenames, labels_pm1: np.ndarray, column: int, split: str, n_test: int,
                     seed: int) -> np.ndarray:
    """Bool mask over `filenames` of `split` ("train" / "test" / "all") under the paper protocol."""
    if split == "val":
        raise ValueError("split_protocol 'paper' has no val split (1000 test images per attribute, the "
                         "rest for training); use split_protocol='official' for val")
    if split == "all":
        return np.ones(len(filenames), bool)
    keys = np.array([file_key(f) for f in filenames], np.int64)
    positive = np.asarray(labels_pm1)[:, column] > 0
    t_pos, t_neg = paper_test_thresholds(keys, positive, n_test, seed)
    score = keys ^ np.int64(_seed_mix(seed))
    test = np.where(positive, score <= t_pos, score <= t_neg)
    return test if split == "test" else ~test


# --------------------------------------------------------------------------------------------
# Manifest and index
# --------------------------------------------------------------------------------------------


def _stat_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _manifest_cached(key: tuple) -> dict:
    with open(key[0], encoding="utf-8") as f:
        return json.load(f)


def read_manifest(data_dir: str) -> dict:
    return _manifest_cached(_stat_key(os.path.join(data_dir, MANIFEST)))


def check_prepared(data_dir: str) -> dict:
    """The manifest of a finished preparation; FileNotFoundError / ValueError naming what is wrong,
    a damaged shard (cut short, or not the record count of the manifest) included."""
    if is_unfinished(data_dir):
        raise FileNotFoundError(
            f"{data_dir!r} holds an unfinished preparation (no {MANIFEST}): rerun "
            f"`python -m maae_tf.data.prepare` with the same --out, it continues where it stopped")
    manifest = read_manifest(data_dir)
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{os.path.join(data_dir, MANIFEST)}: format {manifest.get('format')!r}, "
                         f"this reader reads {FORMAT!r}")
    missing = [s for s in manifest["shards"] if not os.path.isfile(os.path.join(data_dir, s))]
    if missing:
        raise FileNotFoundError(f"{data_dir!r}: {len(missing)} shard(s) of {MANIFEST} are missing: "
                                + ", ".join(missing[:3]) + "; " + rebuild_hint(data_dir, manifest))
    counts = manifest.get("shard_records") or [None] * len(manifest["shards"])
    for shard, count in zip(manifest["shards"], counts):
        path = os.path.join(data_dir, shard)
        problem = shard_problem(path, count)
        if problem:
            raise ValueError(f"shard {path} is damaged ({problem}); " + rebuild_hint(data_dir, manifest))
    return manifest


def rebuild_hint(data_dir: str, manifest: dict) -> str:
    """The `prepare` command that rewrites a folder's missing or damaged shards (and keeps the others)."""
    return (f"rebuild it with `python -m maae_tf.data.prepare --celeba_dir=<the CelebA folder it was prepared "
            f"from> --out={data_dir} --image_size={manifest.get('size')} --masks={manifest.get('masks')} "
            f"--shard_size={manifest.get('shard_size')}`: it rewrites only the missing or damaged shards")


def shard_problem(path: str, expected: int | None = None) -> str | None:
    """What is wrong with the TFRecord file `path` (that should hold `expected` records), read from
    its record headers alone (length fields, no record data): cut short (or trailing bytes), or
    another record count. None when it is whole."""
    return _shard_problem_cached(_stat_key(path), expected)


@functools.lru_cache(maxsize=4096)
def _shard_problem_cached(key: tuple, expected: int | None) -> str | None:
    path, size = key[0], key[2]
    count, offset = 0, 0
    with open(path, "rb") as f:
        while offset < size:
            # a record: uint64 length, uint32 CRC of the length, the data, uint32 CRC of the data
            header = f.read(8)
            end = offset + 16 + int.from_bytes(header, "little") if len(header) == 8 else size + 1
            if end > size:
                return f"cut short inside record {count + 1}: {size} bytes"
            count += 1
            offset = end
            f.seek(offset)
    if expected is not None and count != expected:
        return f"{count} records where {expected} were written"
    return None


@functools.lru_cache(maxsize=4)
def _index_cached(key: tuple) -> tuple:
    data_dir = os.path.dirname(key[0])
    manifest = _manifest_cached(key)
    files, labels, splits = [], [], []
    for shard in manifest["shards"]:
        with open(os.path.join(data_dir, os.path.splitext(shard)[0] + ".json"), encoding="utf-8") as f:
            index = json.load(f)["index"]
        files += index["files"]
        labels += index["labels"]
        splits += index["split"]
    lab = (np.frombuffer("".join(labels).encode("ascii"), np.uint8) - ord("0")).astype(np.int8)
    lab = lab.reshape(len(files), NUM_ATTRS)
    keys = np.array([file_key(f) for f in files], np.int64)
    return tuple(files), lab, np.asarray(splits, np.int64), keys


def read_index(data_dir: str):
    """(files, labels int8 [N, 40] 0/1, official split int64 [N], keys int64 [N]) of every record,
    in shard order, from the sidecars (no image is read)."""
    return _index_cached(_stat_key(os.path.join(data_dir, MANIFEST)))


def _selection(config, split: str):
    """What `split` keeps, and how many positives / negatives of config.attr it holds.

    Returns (rule, n_pos, n_neg); rule is ("official", code) or ("paper", mix, t_pos, t_neg, test).
    """
    if split not in SPLIT_CODES and split != "all":
        raise ValueError(f"split must be one of {sorted(SPLIT_CODES) + ['all']}, got {split!r}")
    column = attributes.index(attributes.resolve(config.attr))
    files, labels, splits, keys = read_index(config.data_dir)
    positive = labels[:, column] == 1
    protocol = config.get("split_protocol", "official")
    if protocol == "paper":
        if split == "val":
            paper_split_mask([], labels, column, "val", 0, 0)  # raises
        mix = _seed_mix(config.seed)
        t_pos, t_neg = paper_test_thresholds(keys, positive, int(config.split_test_per_attribute), config.seed)
        test = np.where(positive, (keys ^ np.int64(mix)) <= t_pos, (keys ^ np.int64(mix)) <= t_neg)
        keep = np.ones(len(files), bool) if split == "all" else (test if split == "test" else ~test)
        rule = ("paper", mix, t_pos, t_neg, split)
    else:
        keep = np.ones(len(files), bool) if split == "all" else splits == SPLIT_CODES[split]
        rule = ("official", -2 if split == "all" else SPLIT_CODES[split])
    return rule, int((keep & positive).sum()), int((keep & ~positive).sum())


# --------------------------------------------------------------------------------------------
# Parsing (tf ops)
# --------------------------------------------------------------------------------------------


def _tf():
    import tensorflow as tf

    return tf


def meta_features():
    tf = _tf()
    return {"labels": tf.io.FixedLenFeature([NUM_ATTRS], tf.int64),
            "split": tf.io.FixedLenFeature([], tf.int64),
            "key": tf.io.FixedLenFeature([], tf.int64)}


def all_features():
    tf = _tf()
    return {**meta_features(),
            "image": tf.io.FixedLenFeature([], tf.string),
            "mask": tf.io.FixedLenFeature([], tf.string),
            "identity": tf.io.FixedLenFeature([], tf.int64),
            "file": tf.io.FixedLenFeature([], tf.string),
            "mask_source": tf.io.FixedLenFeature([], tf.string)}


def _keep_fn(rule, column: int, side: int | None):
    """A predicate on a serialized record: in the split (and, when `side` is 0/1, of that label).
    It parses only labels/split/key: the image bytes are never decoded for a dropped record."""
    tf = _tf()
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


def decode_record(serialized, config, prepared_size: int):
    """(image [S, S, 3] float32 in [-1, 1], mask [S, S, 1] float32 in [0, 1] (1 = background),
    labels [40] float32 0/1) of one serialized record; S = config.image_size."""
    tf = _tf()
    size = int(config.image_size)
    ex = tf.io.parse_single_example(serialized, all_features())
    image = tf.cast(tf.io.decode_jpeg(ex["image"], channels=3), tf.float32)
    mask = tf.cond(tf.strings.length(ex["mask"]) > 0,
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


def shard_paths(data_dir: str) -> list[str]:
    return [os.path.join(data_dir, s) for s in read_manifest(data_dir)["shards"]]


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def pairs_dataset(config, split: str = "train", input_context=None):
    """Endless balanced batches {"x1": negatives, "x2": positives, "m1", "m2"} of config.attr from
    the prepared records, like `celeba.pairs_dataset` gives them from files.

    Each side is its own stream: the shard files (a new seeded order every pass) interleaved with
    parallel reads, the records FILTERED on the split and the attribute's label before anything
    is decoded, shuffled (config.shuffle_buffer), repeated; the two streams are zipped and only
    then decoded. The file list is the dataset's source, so tf.distribute's FILE auto-shard
    policy (`distribute.distribute(..., files_sharded=True)`) gives each worker its own shards;
    `input_context` (tf.distribute.InputContext) shards the files explicitly.
    """
    tf = _tf()
    manifest = check_prepared(config.data_dir)
    check_config(config, manifest)
    name = attributes.resolve(config.attr)
    column = attributes.index(name)
    rule, n_pos, n_neg = _selection(config, split)
    if not n_pos or not n_neg:
        raise ValueError(f"attribute {name} in the {split!r} split of {config.data_dir!r} "
                         f"({config.get('split_protocol', 'official')} protocol) has {n_pos} positive and "
                         f"{n_neg} negative image(s); training needs both")
    shards = shard_paths(config.data_dir)
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(shards) < input_context.num_input_pipelines:
            raise ValueError(f"{len(shards)} shard(s) for {input_context.num_input_pipelines} input pipelines: "
                             "prepare with a smaller --shard_size")
    size = int(manifest["size"])
    seed_neg, seed_pos = stream_seeds(config.seed, 2)
    buffer = max(1, int(config.shuffle_buffer))

    if input_context is not None and input_context.num_input_pipelines > 1:
        shards = shards[input_context.input_pipeline_id::input_context.num_input_pipelines]

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
        ds = ds.filter(_keep_fn(rule, column, side))
        return ds.shuffle(min(buffer, count), seed=seed, reshuffle_each_iteration=True)

    def load_pair(a, b):
        x1, m1, _ = decode_record(a, config, size)
        x2, m2, _ = decode_record(b, config, size)
        return {"x1": x1, "x2": x2, "m1": m1, "m2": m2}

    ds = tf.data.Dataset.zip((stream(0, seed_neg, n_neg), stream(1, seed_pos, n_pos)))
    ds = ds.map(load_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(config.batch_size), drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_dataset(config, split: str = "test", limit: int | None = None, batch_size: int | None = None):
    """Finite, ordered batches {"image", "mask", "labels" ([b, 40] float32 0/1)} of `split`, in shard
    (= sorted file) order; the first `limit` images when given; the last partial batch is kept."""
    tf = _tf()

    manifest = check_prepared(config.data_dir)
    check_config(config, manifest)
    rule, n_pos, n_neg = _selection(config, split)
    if n_pos + n_neg == 0:
        raise ValueError(f"the {split!r} split of {config.data_dir!r} ({config.get('split_protocol', 'official')} "
                         "protocol) has no images")
    column = attributes.index(attributes.resolve(config.attr))
    size = int(manifest["size"])
    ds = tf.data.Dataset.from_tensor_slices(shard_paths(config.data_dir))
    ds = ds.flat_map(lambda f: tf.data.TFRecordDataset(f, buffer_size=1 << 20))
    ds = ds.filter(_keep_fn(rule, column, None))
    if limit is not None:
        ds = ds.take(int(limit))

    def load(serialized):
        image, mask, labels = decode_record(serialized, config, size)
        return {"image": image, "mask": mask, "labels": labels}

    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size or config.batch_size), drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)
