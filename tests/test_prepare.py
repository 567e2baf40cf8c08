"""`python -m maae_tf.data.prepare` and the TFRecord readers (maae_tf/data/prepare.py, records.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import TINY_SPLITS, tiny_config, tiny_name, write_tiny_celeba
from maae_tf import attributes
from maae_tf.data import pipeline, prepare, records, shards, splits

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 32
SHARD = 16  # 40 images -> 3 shards


def _digests(out) -> dict:
    return {n: hashlib.sha256(open(os.path.join(out, n), "rb").read()).hexdigest()
            for n in sorted(os.listdir(out))}


def _damaged_copy(root):
    """The tiny set with image 3 truncated and image 6 deleted."""
    src = write_tiny_celeba(root)
    img = src / "img_align_celeba"
    data = (img / tiny_name(2)).read_bytes()
    (img / tiny_name(2)).write_bytes(data[: len(data) // 2])
    (img / tiny_name(5)).unlink()
    return src


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    return _damaged_copy(tmp_path_factory.mktemp("damaged") / "celeba")


@pytest.fixture(scope="module")
def prepared(damaged, tmp_path_factory):
    out = tmp_path_factory.mktemp("prepared") / "records"
    manifest = prepare.prepare(str(damaged), str(out), size=SIZE, masks="files", workers=1, shard_size=SHARD)
    return out, manifest


def test_manifest_counts_and_failures(prepared):
    out, manifest = prepared
    on_disk = json.loads((out / "manifest.json").read_text())
    assert on_disk == manifest
    assert manifest["total"] == 38 and manifest["listed"] == 40
    assert manifest["num_shards"] == 3 and manifest["shard_records"] == [14, 16, 8]
    failures = {f["file"]: f["error"] for f in manifest["failures"]}
    assert set(failures) == {tiny_name(2), tiny_name(5)}
    assert "truncated" in failures[tiny_name(2)] and "missing" in failures[tiny_name(5)]
    assert manifest["per_split"] == {"train": TINY_SPLITS[0] - 2, "val": TINY_SPLITS[1], "test": TINY_SPLITS[2]}
    mouth = manifest["per_attribute"][attributes.resolve("mouth_open")]
    assert mouth == {"positive": 19, "negative": 19}  # image 3 (positive) and 6 (negative) failed
    assert manifest["per_mask_source"] == {"files": 38}
    assert manifest["size"] == SIZE and len(manifest["crop"]) == 4
    assert not [n for n in os.listdir(out) if n.endswith(".tmp")]


def test_record_contents(prepared):
    out, _ = prepared
    ds = tf.data.TFRecordDataset(str(out / records.shard_name(0, 3)))
    ex = tf.io.parse_single_example(next(iter(ds)), shards.all_features())
    assert ex["file"].numpy() == tiny_name(0).encode()
    assert ex["mask_source"].numpy() == b"files"
    assert ex["split"].numpy() == 0
    assert ex["key"].numpy() == splits.file_key(tiny_name(0))
    labels = ex["labels"].numpy()
    assert set(labels) <= {0, 1} and labels[attributes.index(attributes.resolve("mouth_open"))] == 1
    image = tf.io.decode_jpeg(ex["image"]).numpy()
    mask = tf.io.decode_png(ex["mask"]).numpy()
    assert image.shape == (SIZE, SIZE, 3) and mask.shape == (SIZE, SIZE, 1)
    assert mask[0, 0, 0] == 255 and mask[SIZE // 2, SIZE // 2, 0] == 0  # background corner, face centre


def test_determinism_and_resume(damaged, prepared, tmp_path):
    out, manifest = prepared
    again = tmp_path / "again"
    prepare.prepare(str(damaged), str(again), size=SIZE, masks="files", workers=1, shard_size=SHARD)
    assert _digests(again) == _digests(out)  # identical shards, sidecars, manifest

    # a "killed" run: one shard and its sidecar gone, a half-written .tmp left behind, no manifest
    before = _digests(again)
    mtimes = {n: os.stat(again / n).st_mtime_ns for n in os.listdir(again)}
    (again / records.shard_name(1, 3)).unlink()
    (again / records.shard_name(1, 3, "json")).unlink()
    (again / "manifest.json").unlink()
    (again / (records.shard_name(2, 3) + ".tmp")).write_bytes(b"half a shard")
    with pytest.raises(FileNotFoundError, match="unfinished"):
        pipeline.check_layout(str(again))
    prepare.prepare(str(damaged), str(again), size=SIZE, masks="files", workers=1, shard_size=SHARD)
    assert _digests(again) == before
    for k in (0, 2):  # kept, not rewritten
        assert os.stat(again / records.shard_name(k, 3)).st_mtime_ns == mtimes[records.shard_name(k, 3)]

    with pytest.raises(ValueError, match="other settings"):
        prepare.prepare(str(damaged), str(again), size=64, masks="files", workers=1, shard_size=SHARD)


def test_cli_errors_exit_2(tmp_path, tiny_celeba):
    base = [sys.executable, "-m", "maae_tf.data.prepare"]
    r = subprocess.run(base + [f"--celeba_dir={tmp_path / 'nope'}", f"--out={tmp_path / 'o1'}"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "does not exist" in r.stderr and not (tmp_path / "o1").exists()
    r = subprocess.run(base + [f"--celeba_dir={tiny_celeba}", f"--out={tmp_path / 'o2'}", "--masks=bogus"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 2 and "unknown mask source" in r.stderr and not (tmp_path / "o2").exists()


def test_cli_workers_same_bytes(damaged, prepared, tmp_path):
    """Two worker processes, from the command line: the same files, byte for byte, as in-process."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "maae_tf.data.prepare", f"--celeba_dir={damaged}", f"--out={out}",
                        f"--image_size={SIZE}", "--masks=files", "--workers=2", f"--shard_size={SHARD}"],
                       capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "2 failed" in r.stdout and "images/s" in r.stderr and "ETA" in r.stderr
    assert _digests(out) == _digests(prepared[0])


def test_pairs_filtered_balanced(prepared):
    out, _ = prepared
    cfg = tiny_config(out, batch_size=4)
    ds = pipeline.pairs_dataset(cfg, "train")
    for batch in ds.take(6):
        x1, x2 = batch["x1"].numpy(), batch["x2"].numpy()
        assert x1.shape == (4, SIZE, SIZE, 3) and batch["m1"].shape == (4, SIZE, SIZE, 1)
        assert -1.0 <= x1.min() and x1.max() <= 1.0
        centre = (slice(None), slice(SIZE // 2 - 3, SIZE // 2 + 3), slice(SIZE // 2 - 3, SIZE // 2 + 3))
        # negatives are blue ellipses, positives red (conftest): the label filter picked each side
        assert (x1[centre][..., 2].mean(axis=(1, 2)) > x1[centre][..., 0].mean(axis=(1, 2))).all()
        assert (x2[centre][..., 0].mean(axis=(1, 2)) > x2[centre][..., 2].mean(axis=(1, 2))).all()
        assert 0.0 <= float(batch["m1"].numpy().min()) and float(batch["m1"].numpy().max()) <= 1.0


def test_a_split_reads_exactly_its_records(prepared):
    """images_dataset keeps exactly the records of the split (the index sidecars' split feature), in
    shard order, with their labels."""
    out, _ = prepared
    _, labels, official, _ = records.read_index(str(out))
    for split, code in splits.SPLITS.items():
        got = _read(tiny_config(out), split, "labels")
        np.testing.assert_array_equal(got, labels[official == code])


def test_images_match_file_path(prepared, damaged):
    out, _ = prepared
    got = next(iter(pipeline.images_dataset(tiny_config(out), "test", batch_size=64)))
    want = next(iter(pipeline.images_dataset(tiny_config(damaged), "test", batch_size=64)))
    assert got["image"].shape == want["image"].shape == (TINY_SPLITS[2], SIZE, SIZE, 3)
    np.testing.assert_array_equal(got["labels"].numpy(), want["labels"].numpy())
    assert float(tf.reduce_mean(tf.abs(got["image"] - want["image"]))) < 0.05  # resize filter + JPEG q95
    assert float(tf.reduce_mean(tf.abs(got["mask"] - want["mask"]))) < 0.02
    # read at another size than prepared: resized at read time
    big = next(iter(pipeline.images_dataset(tiny_config(out, image_size=64), "test", limit=2)))
    assert big["image"].shape == (2, 64, 64, 3) and big["mask"].shape == (2, 64, 64, 1)
    with pytest.raises(ValueError, match="crop"):
        pipeline.images_dataset(tiny_config(out, crop_top=0.0), "test")


def _read(cfg, split, key):
    """Every `key` ("image", "mask", "labels") of `split` as pipeline.images_dataset reads it, stacked."""
    return np.concatenate([b[key] for b in pipeline.images_dataset(cfg, split, batch_size=64).as_numpy_iterator()])


def _drawn(cfg, split) -> set[str]:
    """Digests of the images of `split`: which images a split holds, whatever their order."""
    return {hashlib.md5(x.tobytes()).hexdigest() for x in _read(cfg, split, "image")}


def test_paper_split_reproducible(tiny_celeba, tmp_path):
    out = tmp_path / "records"
    prepare.prepare(str(tiny_celeba), str(out), size=SIZE, masks="none", workers=1, shard_size=SHARD)
    paper = dict(split_protocol="paper", split_test_per_attribute=10)
    cfg = tiny_config(out, seed=1, **paper)
    column = attributes.index(attributes.resolve(cfg.attr))
    test_labels = _read(cfg, "test", "labels")[:, column]
    assert (len(test_labels), test_labels.sum()) == (10, 5)  # balanced
    assert len(_read(cfg, "train", "labels")) == 30  # all the rest, official val/test included
    test = _drawn(cfg, "test")
    assert len(test) == 10 and not test & _drawn(cfg, "train")
    assert _drawn(tiny_config(out, seed=1, **paper), "test") == test  # same seed, same draw
    assert _drawn(tiny_config(out, seed=2, **paper), "test") != test  # the seed decides
    # the file-based reader draws the same images (JPEG and resize filters apart), in the same order
    by_files = pipeline.images_dataset(tiny_config(tiny_celeba, seed=1, **paper), "test", batch_size=64)
    assert np.abs(next(iter(by_files))["image"].numpy() - _read(cfg, "test", "image")).mean() < 0.05
    batch = next(iter(pipeline.images_dataset(cfg, "test", batch_size=64)))
    assert len(batch["image"]) == 10
    assert float(tf.reduce_max(batch["mask"])) == 0.0  # masks "none": zeros, as the file path gives
    assert records.read_manifest(str(out))["per_mask_source"] == {"none": 40}
    with pytest.raises(ValueError, match="no val split"):
        pipeline.images_dataset(cfg, "val")


def _x1_digests(ds, batches):
    return [hashlib.md5(x.tobytes()).hexdigest() for b in ds.take(batches) for x in b["x1"].numpy()]


def test_file_sharding_across_workers(prepared):
    """FILE auto-sharding (distribute.distribute(files_sharded=True)) and an explicit InputContext
    give two workers disjoint shard files."""
    from tensorflow.python.data.experimental.ops import distribute as tf_distribute

    out, _ = prepared
    cfg = tiny_config(out, batch_size=1)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.FILE
    seen = []
    for index in range(2):
        ds = pipeline.images_dataset(cfg, "all", batch_size=1).with_options(options)
        sharded = tf_distribute._AutoShardDataset(ds, num_workers=2, index=index, num_replicas=1)
        seen.append(sum(int(b["image"].shape[0]) for b in sharded))
    assert sum(seen) == 38 and min(seen) > 0  # every record once, split between the workers
    # the pairs: FILE policy accepted (the file list is the source), explicit contexts disjoint
    ds = pipeline.pairs_dataset(tiny_config(out, batch_size=2)).with_options(options)
    assert len(_x1_digests(tf_distribute._AutoShardDataset(ds, num_workers=2, index=1, num_replicas=1), 2)) == 4
    per_worker = [set(_x1_digests(pipeline.pairs_dataset(
        tiny_config(out, batch_size=2), "train", tf.distribute.InputContext(2, i, 1)), 10)) for i in range(2)]
    assert per_worker[0] and per_worker[1] and not per_worker[0] & per_worker[1]


def test_train_steps_from_records(prepared, tmp_path):
    out, _ = prepared
    workdir = tmp_path / "run"
    r = subprocess.run(
        [sys.executable, "-m", "maae_tf.train", "--attr=mouth_open", "--config=configs/quickstart.py",
         f"--config.data_dir={out}", "--config.synthetic.build_if_missing=False", f"--config.image_size={SIZE}",
         "--config.width=0.0625", "--config.batch_size=2", "--config.train_steps=2", "--config.log_every=1",
         "--config.checkpoint_every=2", "--config.image_every=1000", "--config.eval.every=0", f"--workdir={workdir}"],
        capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert os.path.exists(workdir / "checkpoints" / "checkpoint")


class TwoWaySource:
    """A mask source that finds its mask one of two ways ("even"/"odd" image numbers) and none for
    image 4, as the segmenter finds the head region through dlib, dlib upsampled or the template."""

    name = "twoway"

    def with_origin(self, image, *, name, landmarks=None):
        from maae_tf.data.masks import MaskUnavailable

        number = int(name.split(".")[0])
        if number == 4:
            raise MaskUnavailable(f"{name}: no way found")
        return np.full(image.shape[:2], 255, np.uint8), "even" if number % 2 == 0 else "odd"


def test_manifest_counts_each_mask_origin(tiny_celeba, tmp_path, monkeypatch, capsys):
    from maae_tf.data import masks

    monkeypatch.setitem(masks.SOURCES, "twoway", lambda arg, data_dir: TwoWaySource())
    manifest = prepare.prepare(str(tiny_celeba), str(tmp_path / "out"), size=SIZE, masks="twoway", workers=1,
                               shard_size=SHARD)
    assert manifest["per_mask_source"] == {"none": 1, "twoway/even": 19, "twoway/odd": 20}
    assert [f["file"] for f in manifest["mask_unavailable"]] == [tiny_name(3)]
    printed = capsys.readouterr().out
    assert "prepare: masks: twoway/odd 20 (50.00 %), twoway/even 19 (47.50 %), none 1 (2.50 %)" in printed
    ds = tf.data.TFRecordDataset(str(tmp_path / "out" / records.shard_name(0, 3)))
    origins = [tf.io.parse_single_example(r, shards.all_features())["mask_source"].numpy() for r in ds.take(4)]
    assert origins == [b"twoway/odd", b"twoway/even", b"twoway/odd", b"none"]  # per record, too


DEV = os.path.join(os.path.dirname(REPO), "shared", "celeba-dev")
# three half-size dev photos: dlib finds the face; finds it only in the image enlarged 2x; finds it neither way
DEV_WAYS = {"000033.jpg": "segmenter/dlib", "000208.jpg": "segmenter/dlib-upsampled",
            "000036.jpg": "segmenter/template"}


def test_small_real_faces_get_masks(tmp_path):
    """`--masks=segmenter` on real 89×109 photos: every one gets a mask, each origin counted."""
    from maae_tf.data.masks import segmenter

    if not os.path.isdir(DEV):
        pytest.skip(f"{DEV} is absent")
    if not os.path.isfile(segmenter.model_path()):
        pytest.skip("the selfie-segmentation model is not cached (python -m maae_tf.data.masks.segmenter --fetch)")
    pytest.importorskip("dlib")
    root = tmp_path / "celeba"  # a 3-image release layout under tmp: CelebA never enters the repository
    (root / "img_align_celeba").mkdir(parents=True)
    for name in DEV_WAYS:
        os.symlink(os.path.join(DEV, "img_align_celeba", name), root / "img_align_celeba" / name)
    for table in ("list_attr_celeba.txt", "list_eval_partition.txt"):
        with open(os.path.join(DEV, table)) as f:
            lines = f.read().splitlines()
        head = ["3", lines[1]] if table == "list_attr_celeba.txt" else []
        (root / table).write_text("\n".join(head + [ln for ln in lines if ln.split(" ")[0] in DEV_WAYS]) + "\n")
    manifest = prepare.prepare(str(root), str(tmp_path / "out"), size=64, masks="segmenter", workers=1)
    assert manifest["mask_unavailable"] == []
    assert manifest["per_mask_source"] == {way: 1 for way in DEV_WAYS.values()}
