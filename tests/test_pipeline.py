"""The one data pipeline (maae_tf/data/pipeline.py) over its two sources: the CelebA release files
and the TFRecord shards prepared from them give the same splits, the same images in the same order
and the same labels, and pairs that depend only on the seed."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import TINY_ATTR, TINY_SPLITS, tiny_config, write_tiny_celeba
from maae_tf import attributes
from maae_tf.data import pipeline, prepare

SIZE = 32
PAPER = dict(split_protocol="paper", split_test_per_attribute=10)


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    """(release folder, prepared folder): the tiny set and its shards (masks from its files)."""
    root = tmp_path_factory.mktemp("pipeline")
    release = write_tiny_celeba(root / "celeba")
    prepared = root / "records"
    prepare.prepare(str(release), str(prepared), size=SIZE, masks="files", workers=1, shard_size=16)
    return release, prepared


def _config(data_dir, **kw):
    """The tiny config on `data_dir`, 4 pairs a batch."""
    return tiny_config(data_dir, image_size=SIZE, batch_size=4, **kw)


def _images(config, split, **kw) -> dict:
    batches = list(pipeline.images_dataset(config, split, batch_size=5, **kw).as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in ("image", "mask", "labels")}


def _close(a: dict, b: dict) -> None:
    np.testing.assert_array_equal(a["labels"], b["labels"])
    assert a["image"].shape == b["image"].shape
    # the shards hold the crop resized by cv2 and stored as JPEG q95: near, not bit-equal
    assert np.abs(a["image"] - b["image"]).mean(axis=(1, 2, 3)).max() < 0.05
    assert np.abs(a["mask"] - b["mask"]).mean(axis=(1, 2, 3)).max() < 0.02


@pytest.mark.parametrize("protocol", [{}, PAPER], ids=["official", "paper"])
def test_the_sources_give_the_same_images_in_the_same_order(sources, protocol):
    release, prepared = sources
    splits = ("train", "val", "test", "all") if not protocol else ("train", "test", "all")
    for split in splits:
        _close(_images(_config(release, seed=1, **protocol), split),
               _images(_config(prepared, seed=1, **protocol), split))
    _close(_images(_config(release, **protocol), "train", limit=7),
           _images(_config(prepared, **protocol), "train", limit=7))
    n_test = len(_images(_config(release, seed=1, **protocol), "test")["labels"])
    assert n_test == (10 if protocol else TINY_SPLITS[2])


def _nearest(images: np.ndarray, reference: np.ndarray) -> list[int]:
    """Index in `reference` of each image (the tiny set's images differ in grey and texture)."""
    d = ((images[:, None] - reference[None]) ** 2).mean(axis=(2, 3, 4))
    return d.argmin(axis=1).tolist()


def _pair_indices(config, batches: int = 12):
    everything = _images(config, "all")["image"]
    pairs = list(pipeline.pairs_dataset(config, "train").take(batches).as_numpy_iterator())
    return ([i for b in pairs for i in _nearest(b["x1"], everything)],
            [i for b in pairs for i in _nearest(b["x2"], everything)])


def test_pairs_come_from_the_split_and_the_seed_alone(sources):
    release, prepared = sources
    train = _images(_config(release), "train")["labels"]
    column = attributes.index(attributes.resolve(TINY_ATTR))
    positives = {i for i, v in enumerate(train[:, column]) if v == 1}
    negatives = set(range(len(train))) - positives
    for data_dir in (release, prepared):
        negative_side, positive_side = _pair_indices(_config(data_dir, seed=3))
        # each side draws its class of the train split, all of it over a few passes
        assert set(negative_side) == negatives and set(positive_side) == positives
        assert _pair_indices(_config(data_dir, seed=3)) == (negative_side, positive_side)
        assert _pair_indices(_config(data_dir, seed=4)) != (negative_side, positive_side)


def test_a_prepared_folder_checks_its_crop_and_the_release_files_their_split(sources):
    release, prepared = sources
    with pytest.raises(ValueError, match="crop"):
        pipeline.pairs_dataset(_config(prepared, crop_top=0.0))
    with pytest.raises(ValueError, match="no val split"):
        pipeline.images_dataset(_config(release, **PAPER), "val")
    with pytest.raises(ValueError, match="split must be one of"):
        pipeline.images_dataset(_config(prepared), "training")
