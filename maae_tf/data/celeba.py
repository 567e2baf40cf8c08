"""Reader for the CelebA release layout (real CelebA and the project's synthetic set).

Layout under `data_dir` (docs/method.md §6)::

    img_align_celeba/000001.jpg      aligned 178x218 JPEGs
    list_attr_celeba.txt             line 1: a count (may differ from the rows, e.g. a sample),
                                     line 2: the 40 attribute names, then `000001.jpg -1  1 ...`
    list_eval_partition.txt          `000001.jpg 0` (0 train, 1 val, 2 test)
    identity_CelebA.txt              optional: `000001.jpg 2880`
    background_masks/000001.png      optional: single-channel uint8 PNG, same size as the image,
                                     255 = background, 0 = foreground (face + hair)

Text files are parsed once in Python; images are decoded by tf ops inside `Dataset.map`
(`load_example`), so the pipeline runs in parallel without the GIL.

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

import functools
import os
import re

import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf import attributes
from maae_tf.data import crop, records

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
MASK_DIR = "background_masks"

SPLITS = {"train": 0, "val": 1, "test": 2}

QUICKSTART_HINT = (
    "have CelebA? pass its folder: --config.data_dir=/path/to/celeba\n"
    "no dataset? build the synthetic one and train on it (from the repository root): "
    "python -m maae_tf.train --attr=mouth_open --config=configs/quickstart.py"
)

EXPECTED_LAYOUT = f"""expected the CelebA release layout:
  DATA_DIR/{IMAGE_DIR}/000001.jpg ...   aligned 178x218 JPEGs
  DATA_DIR/{ATTR_FILE}           line 1: count, line 2: the 40 attribute names, then '000001.jpg -1  1 ...'
  DATA_DIR/{PARTITION_FILE}        '000001.jpg 0' (0 train, 1 val, 2 test)
  DATA_DIR/{IDENTITY_FILE}            optional: '000001.jpg 2880'
  DATA_DIR/{MASK_DIR}/000001.png ...   optional: uint8 PNG, 255 = background, 0 = face+hair"""

_LABEL_VALUES = {"1": 1, "-1": -1}
_TAIL_BYTES = 64  # where the end marker (JPEG EOI / PNG IEND) is looked for


# --------------------------------------------------------------------------------------------
# Layout and text files
# --------------------------------------------------------------------------------------------


def check_layout(data_dir: str) -> None:
    """Raises FileNotFoundError naming what is missing under `data_dir`, with the expected layout.
    A folder prepared by `maae_tf.data.prepare` (it holds manifest.json) is checked as such."""
    if records.is_prepared(data_dir) or records.is_unfinished(data_dir):
        records.check_prepared(data_dir)
        return
    problems = []
    if not data_dir:
        problems.append("data_dir is not set (config.data_dir is empty)")
    elif not os.path.exists(data_dir):
        problems.append(f"data_dir {data_dir!r} does not exist")
    elif not os.path.isdir(data_dir):
        problems.append(f"data_dir {data_dir!r} is not a directory")
    else:
        missing = []
        image_dir = os.path.join(data_dir, IMAGE_DIR)
        if not os.path.isdir(image_dir):
            missing.append(f"{IMAGE_DIR}/")
        else:
            with os.scandir(image_dir) as it:
                if next(it, None) is None:
                    missing.append(f"{IMAGE_DIR}/ is empty: the images")
        for name in (ATTR_FILE, PARTITION_FILE):
            if not os.path.isfile(os.path.join(data_dir, name)):
                missing.append(name)
        if missing:
            problems.append(f"{data_dir!r} is missing: " + ", ".join(missing))
    if problems:
        raise FileNotFoundError("; ".join(problems) + "\n" + EXPECTED_LAYOUT + "\n" + QUICKSTART_HINT)


def _file_key(path: str) -> tuple:
    st = os.stat(path)
    return (os.path.abspath(path), st.st_ino, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=8)
def _read_attributes_cached(key: tuple) -> tuple[tuple[str, ...], np.ndarray]:
    path = key[0]
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    if len(lines) < 2:
        raise ValueError(f"{path}: expected a count line and a header line, found {len(lines)} line(s)")
    try:
        int(lines[0].strip())
    except ValueError:
        raise ValueError(f"{path}, line 1: expected the image count, got {lines[0][:80]!r}") from None
    names = tuple(lines[1].split())
    if names != attributes.CELEBA_ATTRIBUTES:
        expected = attributes.CELEBA_ATTRIBUTES
        diff = [f"column {i + 1}: {got!r} (expected {want!r})"
                for i, (got, want) in enumerate(zip(names, expected)) if got != want][:3]
        if len(names) != len(expected):
            diff.insert(0, f"{len(names)} names (expected {len(expected)})")
        raise ValueError(f"{path}, line 2: the attribute names differ from CelebA's 40: "
                         + "; ".join(diff))
    ncols = len(names) + 1
    filenames: list[str] = []
    rows: list[list[int]] = []
    seen: set[str] = set()
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != ncols:
            raise ValueError(f"{path}, line {lineno}: expected a file name and {len(names)} "
                             f"labels (-1 or 1), found {len(parts)} column(s): {line[:80]!r}")
        try:
            rows.append([_LABEL_VALUES[v] for v in parts[1:]])
        except KeyError:
            bad = next(v for v in parts[1:] if v not in _LABEL_VALUES)
            raise ValueError(f"{path}, line {lineno}: labels must be -1 or 1, found {bad!r} "
                             f"for {parts[0]}") from None
        if parts[0] in seen:
            raise ValueError(f"{path}, line {lineno}: {parts[0]} is listed twice")
        seen.add(parts[0])
        filenames.append(parts[0])
    labels = np.asarray(rows, dtype=np.int8).reshape(len(rows), len(names))
    labels.setflags(write=False)
    return tuple(filenames), labels


def read_attributes(data_dir: str) -> tuple[list[str], np.ndarray]:
    """File names and their labels (int8 [N, 40], -1 / 1) from `list_attr_celeba.txt`.

    The count on line 1 is not trusted (a sample keeps the release's count or its own). Raises
    ValueError naming the file and line on a malformed row or a header that differs from
    `attributes.CELEBA_ATTRIBUTES`.
    """
    check_layout(data_dir)
    filenames, labels = _read_attributes_cached(_file_key(os.path.join(data_dir, ATTR_FILE)))
    return list(filenames), labels.copy()


def _read_name_int_file(path: str, what: str, allowed: set[int] | None = None) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            parts = line.split()
            if not parts:
                continue
            value = None
            if len(parts) == 2:
                try:
                    value = int(parts[1])
                except ValueError:
                    value = None
            if value is None or (allowed is not None and value not in allowed):
                raise ValueError(f"{path}, line {lineno}: expected '<file name> <{what}>', "
                                 f"got {line.rstrip()[:80]!r}")
            out[parts[0]] = value
    return out


def read_partition(data_dir: str) -> dict[str, int]:
    """{file name: 0 train | 1 val | 2 test} from `list_eval_partition.txt`."""
    check_layout(data_dir)
    return _read_name_int_file(os.path.join(data_dir, PARTITION_FILE),
                               "partition 0/1/2", set(SPLITS.values()))


def read_identities(data_dir: str) -> dict[str, int]:
    """{file name: identity} from `identity_CelebA.txt`; {} when the file is absent."""
    check_layout(data_dir)
    path = os.path.join(data_dir, IDENTITY_FILE)
    if not os.path.isfile(path):
        return {}
    return _read_name_int_file(path, "identity")


def has_masks(data_dir: str) -> bool:
    """Whether `data_dir/background_masks/` holds at least one PNG."""
    mask_dir = os.path.join(data_dir, MASK_DIR)
    if not os.path.isdir(mask_dir):
        return False
    with os.scandir(mask_dir) as it:
        return any(e.name.lower().endswith(".png") for e in it)


def mask_paths(data_dir: str, image_paths) -> list[str]:
    """The background-mask path of each image (`background_masks/<stem>.png`), "" where absent."""
    mask_dir = os.path.join(data_dir, MASK_DIR)
    if not os.path.isdir(mask_dir):
        return [""] * len(image_paths)
    present = set(os.listdir(mask_dir))
    out = []
    for p in image_paths:
        name = os.path.splitext(os.path.basename(p))[0] + ".png"
        out.append(os.path.join(mask_dir, name) if name in present else "")
    return out


def split_files(config: ml_collections.ConfigDict, split: str) -> tuple[list[str], np.ndarray]:
    """Image paths and labels (int8 [N, 40], ±1) of one split, in the order of the attribute file.

    `split` is "train", "val", "test" or "all". Raises FileNotFoundError when a listed image is
    not on disk.
    """
    if split != "all" and split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS) + ['all']}, got {split!r}")
    data_dir = config.data_dir
    if records.is_prepared(data_dir):
        raise ValueError(f"{data_dir!r} holds prepared TFRecords, not image files: read it with "
                         "pairs_dataset / images_dataset, or pass the CelebA release folder")
    filenames, labels = read_attributes(data_dir)
    if config.get("split_protocol", "official") == "paper":
        keep = records.paper_split_mask(filenames, labels, attributes.index(attributes.resolve(config.attr)),
                                        split, int(config.split_test_per_attribute), int(config.seed))
        filenames = [f for f, k in zip(filenames, keep) if k]
        labels = labels[keep]
    elif split != "all":
        partition = read_partition(data_dir)
        want = SPLITS[split]
        keep = np.array([partition.get(f, -1) == want for f in filenames], dtype=bool)
        unassigned = sum(1 for f in filenames if f not in partition)
        if unassigned:
            logging.warning("%d image(s) of %s have no row in %s and belong to no split",
                            unassigned, ATTR_FILE, PARTITION_FILE)
        filenames = [f for f, k in zip(filenames, keep) if k]
        labels = labels[keep]
    image_dir = os.path.join(data_dir, IMAGE_DIR)
    present = set(os.listdir(image_dir))
    missing = [f for f in filenames if f not in present]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) listed in {os.path.join(data_dir, ATTR_FILE)} are not in "
            f"{image_dir}: {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    return [os.path.join(image_dir, f) for f in filenames], labels


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
    if records.is_prepared(config.data_dir) or not re.search(r"jpeg|png", error.message or "", re.I):
        return None
    paths, _ = split_files(config, "all")
    logging.info("a decoder failed without naming its file: decoding the %d images of %s one by one",
                 len(paths), config.data_dir)
    bad = find_corrupt_images(paths + [p for p in mask_paths(config.data_dir, paths) if p])
    if not bad:
        return None
    return f"{len(bad)} corrupt image file(s): " + "; ".join(f"{p} ({why})" for p, why in bad[:3])


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


def _masks_for(config, paths: list[str], what: str, log=logging.warning) -> list[str]:
    masks = mask_paths(config.data_dir, paths)
    have = sum(1 for m in masks if m)
    if have == 0:
        log(
            "no background masks in %s for the %s: masks are zeros and the mask loss contributes "
            "nothing", os.path.join(config.data_dir, MASK_DIR), what)
    elif have < len(masks):
        log("%d of %d images of the %s have no background mask in %s: their masks are "
                        "zeros", len(masks) - have, len(masks), what,
                        os.path.join(config.data_dir, MASK_DIR))
    return masks


def pairs_dataset(config: ml_collections.ConfigDict, split: str = "train") -> tf.data.Dataset:
    """Endless balanced batches {"x1": negatives, "x2": positives, "m1", "m2"} of `config.attr`.

    x1/x2: [B, S, S, 3] float32 in [-1, 1]; m1/m2: [B, S, S, 1] in [0, 1] (1 = background);
    B = config.batch_size. Two shuffled, repeated streams (one per side) zipped, seeded by
    config.seed. A prepared `config.data_dir` (manifest.json) is read from its TFRecords
    (`records.pairs_dataset`).
    """
    if records.is_prepared(config.data_dir):
        return records.pairs_dataset(config, split)
    name = attributes.resolve(config.attr)
    column = attributes.index(name)
    paths, labels = split_files(config, split)
    positive = labels[:, column] == 1
    pos = [p for p, k in zip(paths, positive) if k]
    neg = [p for p, k in zip(paths, positive) if not k]
    if not pos or not neg:
        raise ValueError(f"attribute {name} in the {split!r} split of {config.data_dir!r} has "
                         f"{len(pos)} positive and {len(neg)} negative image(s); training needs both")
    crop.fractions(config)  # fail here, not inside the pipeline
    masks = dict(zip(paths, _masks_for(config, paths, f"{split!r} split")))
    seed_neg, seed_pos = records.stream_seeds(config.seed, 2)

    def stream(files, seed):
        ds = tf.data.Dataset.from_tensor_slices((files, [masks[f] for f in files]))
        ds = ds.shuffle(max(1, min(int(config.shuffle_buffer), len(files))), seed=seed,
                        reshuffle_each_iteration=True)
        return ds.repeat()

    def load_pair(a, b):
        x1, m1 = load_example(a[0], a[1], config)
        x2, m2 = load_example(b[0], b[1], config)
        return {"x1": x1, "x2": x2, "m1": m1, "m2": m2}

    ds = tf.data.Dataset.zip((stream(neg, seed_neg), stream(pos, seed_pos)))
    ds = ds.map(load_pair, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(config.batch_size), drop_remainder=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def images_dataset(config: ml_collections.ConfigDict, split: str = "test", limit: int | None = None,
                   batch_size: int | None = None) -> tf.data.Dataset:
    """Finite, ordered batches {"image", "mask", "labels" ([b, 40] float32 0/1)} for evaluation.

    The first `limit` images of `split` (all when None), in the order of the attribute file; the
    last partial batch is kept. `batch_size` defaults to config.batch_size. A prepared
    `config.data_dir` is read from its TFRecords (`records.images_dataset`, shard order).
    """
    if records.is_prepared(config.data_dir):
        return records.images_dataset(config, split, limit, batch_size)
    paths, labels = split_files(config, split)
    if limit is not None:
        paths, labels = paths[:int(limit)], labels[:int(limit)]
    crop.fractions(config)
    masks = _masks_for(config, paths, f"{split!r} split", logging.info) if paths else []
    labels01 = (labels.astype(np.float32) + 1.0) / 2.0
    labels01 = labels01.reshape(len(paths), len(attributes.CELEBA_ATTRIBUTES))

    def load(path, mask_path, label):
        image, mask = load_example(path, mask_path, config)
        return {"image": image, "mask": mask, "labels": label}

    ds = tf.data.Dataset.from_tensor_slices(
        (tf.constant(paths, tf.string, shape=[len(paths)]),
         tf.constant(masks, tf.string, shape=[len(paths)]), labels01))
    ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.batch(int(batch_size or config.batch_size), drop_remainder=False)
    return ds.prefetch(tf.data.AUTOTUNE)
