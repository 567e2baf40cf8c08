"""Prepared CelebA as sharded TFRecords: the folder, the record format, the manifest and its
checks, and the label index of the sidecars. No TensorFlow here: reading the records is the
shards source's (`maae_tf.data.shards`).

`python -m maae_tf.data.prepare` (maae_tf/data/prepare.py) writes a prepared folder; training,
evaluation and the benchmark read it through `maae_tf.data.pipeline` when `config.data_dir` holds
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

Splits (`config.split_protocol`): the rules of `maae_tf.data.splits`, the same as for the
release files (`maae_tf.data.layout.split_files`).
"""

from __future__ import annotations

import functools
import json
import os

import numpy as np

from maae_tf import attributes
from maae_tf.data import splits

FORMAT = "maae_tf.records/1"
MANIFEST = "manifest.json"
PARAMS = "prepare.json"
NUM_ATTRS = len(attributes.CELEBA_ATTRIBUTES)


def shard_name(k: int, n: int, ext: str = "tfrecord") -> str:
    return f"shard-{k:05d}-of-{n:05d}.{ext}"


def is_prepared(data_dir) -> bool:
    return bool(data_dir) and os.path.isfile(os.path.join(data_dir, MANIFEST))


def is_unfinished(data_dir) -> bool:
    """A folder `prepare` started and has not finished (no manifest yet)."""
    return bool(data_dir) and os.path.isfile(os.path.join(data_dir, PARAMS)) and not is_prepared(data_dir)



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
    files, labels, official = [], [], []
    for shard in manifest["shards"]:
        with open(os.path.join(data_dir, os.path.splitext(shard)[0] + ".json"), encoding="utf-8") as f:
            index = json.load(f)["index"]
        files += index["files"]
        labels += index["labels"]
        official += index["split"]
    lab = (np.frombuffer("".join(labels).encode("ascii"), np.uint8) - ord("0")).astype(np.int8)
    lab = lab.reshape(len(files), NUM_ATTRS)
    keys = np.array([splits.file_key(f) for f in files], np.int64)
    return tuple(files), lab, np.asarray(official, np.int64), keys


def read_index(data_dir: str):
    """(files, labels int8 [N, 40] 0/1, official split int64 [N], keys int64 [N]) of every record,
    in shard order, from the sidecars (no image is read)."""
    return _index_cached(_stat_key(os.path.join(data_dir, MANIFEST)))


def shard_paths(data_dir: str) -> list[str]:
    return [os.path.join(data_dir, s) for s in read_manifest(data_dir)["shards"]]
