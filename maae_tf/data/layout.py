"""The CelebA release layout (real CelebA and the project's synthetic set): its files, their
tables parsed in Python, and which image files make a split. No TensorFlow here: decoding the
images is `maae_tf.data.celeba`'s.

Layout under `data_dir` (docs/method.md §6)::

    img_align_celeba/000001.jpg      aligned 178x218 JPEGs
    list_attr_celeba.txt             line 1: a count (may differ from the rows, e.g. a sample),
                                     line 2: the 40 attribute names, then `000001.jpg -1  1 ...`
    list_eval_partition.txt          `000001.jpg 0` (0 train, 1 val, 2 test)
    identity_CelebA.txt              optional: `000001.jpg 2880`
    list_landmarks_align_celeba.txt  optional: count, 10 column names, `000001.jpg x1 y1 ... x5 y5`
    background_masks/000001.png      optional: single-channel uint8 PNG, same size as the image,
                                     255 = background, 0 = foreground (face + hair)
"""

from __future__ import annotations

import functools
import os

import ml_collections
import numpy as np
from absl import logging

from maae_tf import attributes
from maae_tf.data import records, splits

IMAGE_DIR = "img_align_celeba"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
MASK_DIR = "background_masks"

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


def check_layout(data_dir: str) -> None:
    """Raises FileNotFoundError naming what is missing under `data_dir`, with the expected layout."""
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
                               "partition 0/1/2", set(splits.SPLITS.values()))


def read_identities(data_dir: str) -> dict[str, int]:
    """{file name: identity} from `identity_CelebA.txt`; {} when the file is absent."""
    check_layout(data_dir)
    path = os.path.join(data_dir, IDENTITY_FILE)
    if not os.path.isfile(path):
        return {}
    return _read_name_int_file(path, "identity")


def read_landmarks(celeba_dir: str) -> dict[str, list[float]]:
    """{file: [x1, y1, ..., x5, y5]} from list_landmarks_align_celeba.txt; {} when absent."""
    path = os.path.join(celeba_dir, LANDMARK_FILE)
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 11:
            raise ValueError(f"{path}, line {lineno}: expected a file name and 10 coordinates, got {line[:80]!r}")
        try:
            out[parts[0]] = [float(v) for v in parts[1:]]
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: coordinates must be numbers, got {line[:80]!r}") from None
    return out


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
    splits.check_split(split)
    data_dir = config.data_dir
    if records.is_prepared(data_dir):
        raise ValueError(f"{data_dir!r} holds prepared TFRecords, not image files: read it with "
                         "pairs_dataset / images_dataset, or pass the CelebA release folder")
    filenames, labels = read_attributes(data_dir)
    if config.get("split_protocol", "official") == "paper":
        keep = splits.paper_split_mask(filenames, labels, attributes.index(attributes.resolve(config.attr)),
                                       split, int(config.split_test_per_attribute), int(config.seed))
        filenames = [f for f, k in zip(filenames, keep) if k]
        labels = labels[keep]
    elif split != "all":
        partition = read_partition(data_dir)
        want = splits.SPLITS[split]
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
