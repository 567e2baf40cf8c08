"""Tests of maae_tf.data.celeba on tiny CelebA-layout fixtures built here with cv2."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config
from maae_tf import attributes
from maae_tf.data import celeba, pipeline
from maae_tf.data import layout as release

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "shared" / "celeba-sample"
NAMES = attributes.CELEBA_ATTRIBUTES
COL = attributes.index("mouth_open")
H, W = 218, 178  # CelebA aligned image size (rows, cols)
TOP, LEFT, SIDE = 26, 3, 170  # the default crop, in pixels of a 178x218 image

# 12 images: i % 3 == 0 -> positive for mouth_open (4 positives, 8 negatives).
# Positives are painted grey 170 + 5k, negatives grey 20 + 5k (k = image index): x > 0 <=> positive,
# and the shade tells the image apart. Partition: 0-7 train, 8-9 val, 10-11 test.
N = 12


def _shade(i: int) -> int:
    return (170 if i % 3 == 0 else 20) + 5 * i


def _value(i: int) -> float:
    return _shade(i) / 127.5 - 1.0


def _name(i: int) -> str:
    return f"{i + 1:06d}.jpg"


def _labels(i: int) -> list[int]:
    row = [(-1) ** (i + j) for j in range(len(NAMES))]
    row[COL] = 1 if i % 3 == 0 else -1
    return row


def _write_attr(path: Path, rows, count=None, names=NAMES):
    lines = [str(len(rows) if count is None else count), " ".join(names) + " "]
    for i, (name, labels) in enumerate(rows):
        sep = "  " if i % 2 else " \t"
        lines.append(name + sep + sep.join(f"{v:2d}" if i % 2 else str(v) for v in labels))
    path.write_text("\n".join(lines) + "\n\n")


def make_layout(root: Path, n: int = N, masks: bool = True, identities: bool = True,
                size=(H, W)) -> Path:
    h, w = size
    (root / release.IMAGE_DIR).mkdir(parents=True)
    rows = []
    for i in range(n):
        image = np.full((h, w, 3), _shade(i), np.uint8)
        cv2.imwrite(str(root / release.IMAGE_DIR / _name(i)), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append((_name(i), _labels(i)))
    _write_attr(root / release.ATTR_FILE, rows, count=202599)
    part = [0 if i < 8 else 1 if i < 10 else 2 for i in range(n)]
    (root / release.PARTITION_FILE).write_text("".join(f"{_name(i)} {p}\n" for i, p in enumerate(part)))
    if identities:
        (root / release.IDENTITY_FILE).write_text("".join(f"{_name(i)} {100 + i // 2}\n" for i in range(n)))
    if masks:
        (root / release.MASK_DIR).mkdir()
        for i in range(n):
            mask = np.zeros((h, w), np.uint8)
            mask[: h // 2] = 255  # top half background
            cv2.imwrite(str(root / release.MASK_DIR / _name(i).replace(".jpg", ".png")), mask)
    return root


@pytest.fixture
def layout(tmp_path):
    return make_layout(tmp_path / "celeba")


@pytest.fixture
def layout_nomask(tmp_path):
    return make_layout(tmp_path / "celeba_nomask", masks=False, identities=False)


def _which(x: np.ndarray) -> list[int]:
    """Image index from the painted shade of each image in a batch [b, S, S, 3]."""
    means = (x.reshape(x.shape[0], -1).mean(axis=1) + 1.0) * 127.5
    out = []
    for m in means:
        i = int(np.argmin([abs(_shade(k) - m) for k in range(N)]))
        assert abs(_shade(i) - m) < 2.0, m
        out.append(i)
    return out


# ------------------------------------------------------------------------------------- parsing


def test_read_attributes_count_mismatch_and_whitespace(layout):
    files, labels = release.read_attributes(str(layout))
    assert files == [_name(i) for i in range(N)]  # count line says 202599
    assert labels.dtype == np.int8 and labels.shape == (N, 40)
    np.testing.assert_array_equal(labels, np.array([_labels(i) for i in range(N)], np.int8))


def test_read_partition_and_identities(layout, layout_nomask):
    part = release.read_partition(str(layout))
    assert part[_name(0)] == 0 and part[_name(8)] == 1 and part[_name(11)] == 2 and len(part) == N
    ids = release.read_identities(str(layout))
    assert ids[_name(3)] == 101 and len(ids) == N
    assert release.read_identities(str(layout_nomask)) == {}


@pytest.mark.parametrize("bad_row, needle", [
    ("000013.jpg 1 -1", "line 5"),  # wrong column count
    ("000013.jpg " + " ".join(["1"] * 39 + ["0"]), "'0'"),  # not ±1
])
def test_malformed_attribute_row_names_file_and_line(tmp_path, bad_row, needle):
    root = make_layout(tmp_path / "d", n=3, masks=False)
    path = root / release.ATTR_FILE
    lines = path.read_text().splitlines()
    lines.insert(4, bad_row)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError) as e:
        release.read_attributes(str(root))
    assert str(path) in str(e.value) and "line 5" in str(e.value) and needle in str(e.value)


def test_malformed_header_and_count(tmp_path):
    root = make_layout(tmp_path / "d", n=2, masks=False)
    path = root / release.ATTR_FILE
    names = list(NAMES)
    names[3] = "Bags_Under_The_Eyes"
    _write_attr(path, [(_name(i), _labels(i)) for i in range(2)], names=names)
    with pytest.raises(ValueError, match="line 2.*Bags_Under_The_Eyes"):
        release.read_attributes(str(root))
    _write_attr(path, [(_name(i), _labels(i)) for i in range(2)], count="many")
    with pytest.raises(ValueError, match="line 1"):
        release.read_attributes(str(root))


def test_malformed_partition_names_file_and_line(tmp_path):
    root = make_layout(tmp_path / "d", n=3, masks=False)
    path = root / release.PARTITION_FILE
    path.write_text(f"{_name(0)} 0\n{_name(1)} 7\n")
    with pytest.raises(ValueError) as e:
        release.read_partition(str(root))
    assert str(path) in str(e.value) and "line 2" in str(e.value)


@pytest.mark.parametrize("case", ["unset", "absent", "empty", "no_images"])
def test_check_layout_message(tmp_path, case):
    data_dir = {"unset": "", "absent": str(tmp_path / "nope"), "empty": str(tmp_path)}.get(case)
    if case == "no_images":
        make_layout(tmp_path / "d", n=1, masks=False)
        (tmp_path / "d" / release.IMAGE_DIR / _name(0)).unlink()
        data_dir = str(tmp_path / "d")
    with pytest.raises(FileNotFoundError) as e:
        pipeline.check_layout(data_dir)
    msg = str(e.value)
    assert "python -m maae_tf.train --attr=mouth_open --config=configs/quickstart.py" in msg
    for name in ("img_align_celeba/", "list_attr_celeba.txt", "list_eval_partition.txt",
                 "identity_CelebA.txt", "background_masks/"):
        assert name in msg
    if case == "empty":
        assert "missing: img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt" in msg
    if case == "no_images":
        assert "img_align_celeba/ is empty" in msg
    with pytest.raises(FileNotFoundError):
        pipeline.pairs_dataset(tiny_config(data_dir))


def test_split_files_and_missing_image(layout):
    c = tiny_config(layout)
    counts = {s: len(release.split_files(c, s)[0]) for s in ("train", "val", "test", "all")}
    assert counts == {"train": 8, "val": 2, "test": 2, "all": 12}
    paths, labels = release.split_files(c, "test")
    assert [os.path.basename(p) for p in paths] == [_name(10), _name(11)]
    assert all(os.path.isfile(p) for p in paths) and labels.shape == (2, 40)
    with pytest.raises(ValueError, match="split"):
        release.split_files(c, "training")
    (layout / release.IMAGE_DIR / _name(9)).unlink()
    with pytest.raises(FileNotFoundError, match=_name(9)):
        release.split_files(c, "val")


def test_has_masks(layout, layout_nomask):
    assert release.has_masks(str(layout)) and not release.has_masks(str(layout_nomask))


# ------------------------------------------------------------------------------------ decoding


def _load(config, i, root, mask=True):
    path = str(root / release.IMAGE_DIR / _name(i))
    mpath = str(root / release.MASK_DIR / _name(i).replace(".jpg", ".png")) if mask else ""
    image, m = celeba.load_example(path, mpath, config)
    return image.numpy(), m.numpy()


def test_load_example_crop_resize_and_mask(tmp_path):
    root = make_layout(tmp_path / "d", n=1, masks=True)
    # Paint outside the crop window white and inside red: after the crop only red may remain.
    image = np.full((H, W, 3), 255, np.uint8)
    image[TOP:TOP + SIDE, LEFT:LEFT + SIDE] = (0, 0, 255)  # BGR red
    cv2.imwrite(str(root / release.IMAGE_DIR / _name(0)), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    mask = np.zeros((H, W), np.uint8)
    mask[: TOP + SIDE // 2] = 255  # background above the crop's middle row
    cv2.imwrite(str(root / release.MASK_DIR / "000001.png"), mask)
    for size in (32, 64):
        x, m = _load(tiny_config(root, image_size=size), 0, root)
        assert x.shape == (size, size, 3) and x.dtype == np.float32
        assert m.shape == (size, size, 1) and m.dtype == np.float32
        assert x.min() >= -1.0 and x.max() <= 1.0 and m.min() >= 0.0 and m.max() <= 1.0
        inner = x[2:-2, 2:-2]  # JPEG chroma bleeds a little at the window's edge
        assert inner[..., 0].min() > 0.8 and inner[..., 1:].max() < -0.8  # RGB order, no white
        assert m[: size // 2 - 1].min() > 0.99 and m[size // 2 + 1:].max() < 0.01
    _, m0 = _load(tiny_config(root), 0, root, mask=False)
    assert m0.shape == (32, 32, 1) and not m0.any()


def test_relative_crop_works_on_half_size_copy(tmp_path):
    full = make_layout(tmp_path / "full", n=1, masks=False)
    half = make_layout(tmp_path / "half", n=1, masks=True, size=(H // 2, W // 2))
    for root, (h, w) in ((full, (H, W)), (half, (H // 2, W // 2))):
        image = np.full((h, w, 3), 250, np.uint8)
        t, l, s = round(TOP * h / H), round(LEFT * w / W), round(SIDE * h / H)
        image[t:t + s, l:l + s] = 10
        cv2.imwrite(str(root / release.IMAGE_DIR / _name(0)), image, [cv2.IMWRITE_JPEG_QUALITY, 100])
    a, _ = _load(tiny_config(full), 0, full, mask=False)
    b, _ = _load(tiny_config(half), 0, half, mask=False)
    assert a[1:-1, 1:-1].max() < -0.8 and b[1:-1, 1:-1].max() < -0.8
    # The mask of a half-size copy is enlarged (85 -> 128 px): top half background, bottom not.
    _, m = _load(tiny_config(half, image_size=128), 0, half)
    assert m.shape == (128, 128, 1) and m[:55].min() > 0.99 and m[70:].max() < 0.01


def test_corrupt_jpeg_error_names_file(layout):
    bad = layout / release.IMAGE_DIR / _name(10)
    data = bad.read_bytes()
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(tf.errors.InvalidArgumentError, match=_name(10)):
        for _ in pipeline.images_dataset(tiny_config(layout), "test"):
            pass
    assert [p for p, _ in celeba.find_corrupt_images([bad])] == [str(bad)]


# ------------------------------------------------------------------------------------ datasets


def test_pairs_are_balanced_with_masks(layout):
    c = tiny_config(layout, batch_size=5)
    batches = list(pipeline.pairs_dataset(c, "train").take(4).as_numpy_iterator())
    for b in batches:
        assert set(b) == {"x1", "x2", "m1", "m2"}
        assert b["x1"].shape == b["x2"].shape == (5, 32, 32, 3)
        assert b["m1"].shape == b["m2"].shape == (5, 32, 32, 1)
        assert all(v.dtype == np.float32 for v in b.values())
        assert all(i % 3 != 0 and i < 8 for i in _which(b["x1"]))  # train negatives
        assert all(i % 3 == 0 and i < 8 for i in _which(b["x2"]))  # train positives
        for m in (b["m1"], b["m2"]):
            assert m[:, :10].min() > 0.99 and m[:, -10:].max() < 0.01
    # 3 train positives (0, 3, 6), repeated: with drop_remainder every batch is full
    seen = {i for b in batches for i in _which(b["x2"])}
    assert seen == {0, 3, 6}


def test_pairs_without_masks_are_zero(layout_nomask):
    b = next(iter(pipeline.pairs_dataset(tiny_config(layout_nomask))))
    assert not b["m1"].numpy().any() and not b["m2"].numpy().any()


def test_pairs_need_both_sides(layout):
    c = tiny_config(layout, attr="Bald")
    files, labels = release.read_attributes(str(layout))
    col = attributes.index("bald")
    rows = [(f, [(-1 if j == col else v) for j, v in enumerate(l)]) for f, l in zip(files, labels)]
    _write_attr(layout / release.ATTR_FILE, rows)
    with pytest.raises(ValueError, match=r"Bald.*0 positive and 8 negative"):
        pipeline.pairs_dataset(c, "train")


def test_pairs_deterministic_with_seed(layout):
    def order(seed):
        ds = pipeline.pairs_dataset(tiny_config(layout, seed=seed, batch_size=4), "train")
        return [(_which(b["x1"]), _which(b["x2"])) for b in ds.take(4).as_numpy_iterator()]

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_images_dataset_order_labels_and_last_batch(layout):
    c = tiny_config(layout, batch_size=3)
    batches = list(pipeline.images_dataset(c, "all", batch_size=5).as_numpy_iterator())
    assert [b["image"].shape[0] for b in batches] == [5, 5, 2]
    assert [i for b in batches for i in _which(b["image"])] == list(range(N))
    labels = np.concatenate([b["labels"] for b in batches])
    assert labels.dtype == np.float32 and labels.shape == (N, 40)
    np.testing.assert_array_equal(labels, (np.array([_labels(i) for i in range(N)]) + 1) / 2)
    assert all(b["mask"].shape[1:] == (32, 32, 1) for b in batches)
    limited = list(pipeline.images_dataset(c, "train", limit=7).as_numpy_iterator())
    assert [i for b in limited for i in _which(b["image"])] == list(range(7))
    assert [b["image"].shape[0] for b in limited] == [3, 3, 1]


# ------------------------------------------------------------------------- real CelebA sample


@pytest.mark.skipif(not SAMPLE_DIR.is_dir(), reason=f"{SAMPLE_DIR} absent")
@pytest.mark.parametrize("attr", ["mouth_open", "blond_hair"])
def test_real_sample(attr):
    c = tiny_config(SAMPLE_DIR, attr=attr, image_size=64, batch_size=4)
    files, labels = release.read_attributes(str(SAMPLE_DIR))
    assert len(files) == 32 and labels.shape == (32, 40)
    col = attributes.index(attr)
    b = next(iter(pipeline.pairs_dataset(c, "train")))
    assert b["x1"].shape == b["x2"].shape == (4, 64, 64, 3)
    assert b["m1"].shape == (4, 64, 64, 1) and not b["m1"].numpy().any()
    x = b["x1"].numpy()
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1  # a photo, not a flat fill
    images = list(pipeline.images_dataset(c, "all", limit=10).as_numpy_iterator())
    assert [im["image"].shape for im in images] == [(4, 64, 64, 3)] * 2 + [(2, 64, 64, 3)]
    got = np.concatenate([im["labels"][:, col] for im in images])
    np.testing.assert_array_equal(got, (labels[:10, col] + 1) / 2)
