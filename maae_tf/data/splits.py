"""Which images make a split, one rule for both sources (release files and prepared shards).

`config.split_protocol` "official" keeps list_eval_partition.txt's partition (`SPLITS`); "paper"
holds out `config.split_test_per_attribute` (1000) test images for `config.attr` from ALL images,
half positives and half negatives, drawn by seed from a hash of the file names
(`paper_test_thresholds`), and trains on the rest; that protocol has no val split. The shuffle
seeds of the pairs' two streams (`stream_seeds`) are drawn here too, so both sources shuffle alike.
"""

from __future__ import annotations

import hashlib

import numpy as np

from maae_tf import attributes

PROTOCOLS = ("official", "paper")  # config.split_protocol
SPLITS = {"train": 0, "val": 1, "test": 2}
_MASK63 = (1 << 63) - 1


def check_split(split: str) -> None:
    """ValueError unless `split` is "train", "val", "test" or "all"."""
    if split != "all" and split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS) + ['all']}, got {split!r}")


def file_key(name: str) -> int:
    """A 63-bit hash of an image's file name (stored in each record as `key`)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "little") & _MASK63


def stream_seeds(seed: int, n: int) -> list[int]:
    """`n` shuffle seeds drawn from the run's `seed`: one per stream of pairs (negatives, positives),
    the same for both sources, so files and their TFRecords give the same pairs."""
    state = np.random.SeedSequence([int(seed), 0x6D616165]).generate_state(n, dtype=np.uint32)
    return [int(s) & 0x7FFFFFFF for s in state]


def seed_mix(seed: int) -> int:
    """What the paper draw XORs the file keys with: a bijection of the keys chosen by `seed`."""
    return file_key(f"maae_tf paper split, seed {int(seed)}")


def paper_test_counts(n_pos: int, n_neg: int, n_test: int) -> tuple[int, int]:
    """Test images drawn among the positives and negatives: n_test/2 of each, at most half of a
    class (a rare attribute keeps half its positives for training), negatives fill up to n_test."""
    k_pos = min(n_test // 2, n_pos // 2)
    k_neg = min(n_test - k_pos, n_neg // 2)
    return k_pos, k_neg


def paper_test_thresholds(keys: np.ndarray, positive: np.ndarray, n_test: int, seed: int) -> tuple[int, int]:
    """(threshold for positives, for negatives): an image is in the test split iff
    `key XOR seed_mix(seed) <= threshold` of its class. The score is a bijection of the file-name
    hash, so the draw depends only on the names, the labels and the seed (not on file order)."""
    score = np.asarray(keys, np.int64) ^ np.int64(seed_mix(seed))
    positive = np.asarray(positive, bool)
    k_pos, k_neg = paper_test_counts(int(positive.sum()), int((~positive).sum()), int(n_test))

    def thr(s, k):
        return int(np.partition(s, k - 1)[k - 1]) if k > 0 else -1

    return thr(score[positive], k_pos), thr(score[~positive], k_neg)


def check_paper_split(split: str) -> None:
    """ValueError for the val split, which the paper protocol does not have."""
    if split == "val":
        raise ValueError("split_protocol 'paper' has no val split (1000 test images per attribute, the "
                         "rest for training); use split_protocol='official' for val")


def paper_keep(keys: np.ndarray, positive: np.ndarray, split: str, n_test: int, seed: int) -> np.ndarray:
    """Bool mask over the images (their `file_key`s and labels) of `split` under the paper protocol."""
    check_paper_split(split)
    if split == "all":
        return np.ones(len(keys), bool)
    keys = np.asarray(keys, np.int64)
    t_pos, t_neg = paper_test_thresholds(keys, positive, n_test, seed)
    score = keys ^ np.int64(seed_mix(seed))
    test = np.where(positive, score <= t_pos, score <= t_neg)
    return test if split == "test" else ~test


def paper_split_mask(filenames, labels_pm1: np.ndarray, column: int, split: str, n_test: int,
                     seed: int) -> np.ndarray:
    """Bool mask over `filenames` of `split` ("train" / "test" / "all") under the paper protocol."""
    keys = np.array([file_key(f) for f in filenames], np.int64)
    return paper_keep(keys, np.asarray(labels_pm1)[:, column] > 0, split, n_test, seed)


def need_both_sides(config, split: str, n_pos: int, n_neg: int) -> None:
    """ValueError when the split lacks positives or negatives of `config.attr`: pairs need both."""
    if not n_pos or not n_neg:
        raise ValueError(f"attribute {attributes.resolve(config.attr)} in the {split!r} split of {config.data_dir!r} "
                         f"({config.get('split_protocol', 'official')} protocol) has {n_pos} positive and "
                         f"{n_neg} negative image(s); training needs both")
