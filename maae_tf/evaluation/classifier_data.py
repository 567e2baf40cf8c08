"""The attribute classifier's splits and input pipelines (docs/method.md §7).

Splits (`split_plan`): the official partition (list_eval_partition.txt) where it has a test
split, so that the figure compares with peers' (94.5 % mean accuracy over CelebA's 40
attributes on the official test split); a folder without one (the dev set, any user's sample)
gets its own, drawn by seed from the file names: HELD_OUT_SHARE of the images held out, the rest
for training. Under the paper protocol the images a run is evaluated on (its
`split_test_per_attribute` test images of config.attr) never train the classifier nor choose its
thresholds, and are dropped from a held-out split of its own; the line `split_note` says so.
"""

from __future__ import annotations

import copy
import hashlib
import os

import numpy as np
import tensorflow as tf

from maae_tf import attributes
from maae_tf.data import celeba, layout, pipeline, records, splits

SHIFT_PX = 2  # the largest shift of a training image (`augment`): 3 cost Mouth_Slightly_Open 0.03
HELD_OUT_SHARE = 0.12  # of the images, held out by seed where the folder has no official test split


def attribute_columns(attrs) -> tuple[list[str], list[int]]:
    """(official names, label columns) of `attrs` (names or aliases); ValueError when empty."""
    names = [attributes.resolve(a) for a in attrs]
    if not names:
        raise ValueError("attrs is empty: name at least one attribute")
    return names, [attributes.index(n) for n in names]


TRAIN, VAL, TEST, UNUSED = 0, 1, 2, -1
ROLE_NAMES = {"train": TRAIN, "val": VAL, "test": TEST}


def _index(config) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(file names, labels int8 [N, 40] ±1, official partition int64 [N]: 0/1/2, -1 unlisted) of
    every image of config.data_dir, in reading order (attribute file order, or shard order for
    prepared TFRecords)."""
    pipeline.check_layout(config.data_dir)
    if records.is_prepared(config.data_dir):
        files, labels01, official, _ = records.read_index(config.data_dir)
        return list(files), (labels01.astype(np.int8) * 2 - 1), np.asarray(official, np.int64)
    everything = copy.deepcopy(config)
    with everything.unlocked():
        everything.split_protocol = "official"
    paths, labels = layout.split_files(everything, "all")  # checks every image is on disk
    files = [os.path.basename(p) for p in paths]
    partition = layout.read_partition(config.data_dir)
    return files, labels, np.array([partition.get(f, -1) for f in files], np.int64)


def gan_test_mask(config, files, labels) -> np.ndarray:
    """bool [N]: the images a run of `config` is evaluated on when they are not the official test
    split, i.e. the paper protocol's test images of config.attr (split_test_per_attribute, seed),
    drawn by the same code as the run's own split; all False under the official protocol."""
    if config.get("split_protocol", "official") != "paper":
        return np.zeros(len(files), bool)
    return splits.paper_split_mask(files, labels, attributes.index(attributes.resolve(config.attr)), "test",
                                   int(config.split_test_per_attribute), int(config.seed))


def _draw_order(files, seed: int) -> np.ndarray:
    """Position of each image in a seeded order that depends only on the file names: a salted hash
    (not the records' key XOR a mix, whose order follows the paper draw's and would overlap it)."""
    score = np.array([splits.file_key(f"maae_tf classifier split, seed {int(seed)}/{f}") for f in files], np.int64)
    order = np.empty(len(files), np.int64)
    order[np.argsort(score, kind="stable")] = np.arange(len(files))
    return order


def split_plan(config, seed: int | None = None) -> dict:
    """What the classifier of config's dataset trains, chooses its thresholds and is tested on.

    The official partition where it has a test split; a folder without one (a sample of CelebA)
    gets its own: the first HELD_OUT_SHARE of the images in `_draw_order(seed)` are held out, and
    the rest train it. Only an official val split chooses thresholds: one drawn here cost Blond_Hair
    0.02 balanced accuracy on the dev set (a tenth of its few positives out of training) for a
    threshold worth ±0.01 (docs/method.md §7). The images a run of `config` is judged on
    (`gan_test_mask`: the paper protocol's test images) never train the classifier nor choose its
    thresholds; they are also dropped from a held-out split of its own, which is then disjoint
    from them.

    Returns {"files", "labels" (±1), "role" (int8 [N]: TRAIN, VAL, TEST or UNUSED), "test_source"
    ("official" | "own"), "val_source" ("official" | "none"), "excluded" (how many GAN test images
    were dropped), "exclusion" (what was dropped, for the cache key; None when nothing), "counts"
    {train, val, test}}.
    """
    seed = int(config.seed if seed is None else seed)
    files, labels, official = _index(config)
    role = np.where(np.isin(official, (TRAIN, VAL, TEST)), official, UNUSED).astype(np.int8)
    test_source = "official"
    if not (role == TEST).any():
        role[_draw_order(files, seed) < int(round(HELD_OUT_SHARE * len(files)))] = TEST
        test_source = "own"
    val_source = "official" if (role == VAL).any() else "none"
    gan_test = gan_test_mask(config, files, labels)
    dropped = gan_test & ((role != TEST) | (test_source == "own"))
    role[dropped] = UNUSED
    return {"files": files, "labels": labels, "role": role, "test_source": test_source, "val_source": val_source,
            "excluded": int(gan_test.sum()), "exclusion": _describe_exclusion(config, files, gan_test),
            "counts": {name: int((role == r).sum()) for name, r in ROLE_NAMES.items()}}


def split_note(plan: dict, config) -> str:
    """The one line that says what the classifier trained and was tested on."""
    c = plan["counts"]
    line = (f"classifier split of {config.data_dir}: {c['train']} train / {c['val']} val / {c['test']} held-out images"
            + (f" (no official test partition: held out {100 * HELD_OUT_SHARE:g} % by seed)"
               if plan["test_source"] == "own" else " (official partition)"))
    e = plan["exclusion"]
    if e:
        line += (f"; the GAN's {e['images']} test images of {e['attr']} (paper protocol, seed {e['seed']}) "
                 + ("excluded from its training and held-out images" if plan["test_source"] == "own"
                    else "excluded from its training and val images"))
    return line


SHUFFLE_RECORDS = 32768  # encoded images (a few kB each at 64 px) the training stream shuffles


def role_images(config, plan: dict, role: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
    """Unbatched (image [S, S, 3] in [-1, 1], labels [40] 0/1) of the images of `role`, in reading
    order, or endlessly reshuffled by `shuffle_seed` BEFORE decoding (file names, or encoded records
    up to SHUFFLE_RECORDS: a prepared folder is in file order, and a buffer of decoded images the
    size of config.shuffle_buffer held half the dev set)."""
    src = pipeline.source(config)
    keep = tf.constant(plan["role"] == role)
    count = int((plan["role"] == role).sum())
    # every image in reading order, the order of `plan` (`_index`), then those of `role`
    ds = src.ordered(config, "all").enumerate().filter(lambda i, _: keep[i])
    ds = ds.map(lambda _, element: element)
    if shuffle_seed is not None:
        buffer = count if src is celeba else min(count, SHUFFLE_RECORDS)
        ds = ds.shuffle(max(1, buffer), seed=shuffle_seed, reshuffle_each_iteration=True).repeat()
    decode = src.decoder(config, masks=False)
    return ds.map(lambda element: (lambda d: (d["image"], d["labels"]))(decode(element)),
                  num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def train_dataset(config, attrs, batch: int, seed: int = 0, plan: dict | None = None) -> tf.data.Dataset:
    """Endless shuffled batches (images [b, S, S, 3], labels [b, len(attrs)] 0/1) of the
    classifier's train split (`split_plan`), flipped and shifted by `augment` (stateless, keyed by
    the example index). Shifts of up to 2 px lift Blond_Hair from 0.86 to 0.92-0.94 balanced
    accuracy on the dev set's held-out images and keep Mouth_Slightly_Open at 0.89; 3 px cost the
    mouth 0.03, and a colour jitter cost it 0.05-0.08 (docs/method.md §7): no colour changes."""
    _, cols = attribute_columns(attrs)
    plan = split_plan(config, seed) if plan is None else plan
    count = plan["counts"]["train"]
    if not count:
        raise ValueError(f"the classifier's train split of {config.data_dir!r} is empty: it needs images")
    ds = role_images(config, plan, TRAIN, shuffle_seed=seed).map(lambda image, label: (image, tf.gather(label, cols)))
    ds = ds.enumerate().map(lambda i, item: (augment(item[0], seed, i), item[1]),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(int(batch), drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def augment(image, seed: int, index) -> tf.Tensor:
    """A training image [S, S, 3] flipped left-right at random and shifted by up to SHIFT_PX pixels
    each way (mirrored at the border), both stateless, keyed by (seed, index). Why the shifts: on
    flips only, the judge learnt the dev set's ~380 blond faces by heart (0.79 of unseen blond faces
    found, 0.95 of the others) where 2 px shifts find 0.88-0.97 of both (docs/method.md §7)."""
    flip_key, shift_key = tf.unstack(tf.random.experimental.stateless_split(
        tf.stack([tf.cast(seed, tf.int64), tf.cast(index, tf.int64)]), 2))
    image = tf.image.stateless_random_flip_left_right(image, flip_key)
    if not SHIFT_PX:
        return image
    padded = tf.pad(image, [[SHIFT_PX, SHIFT_PX], [SHIFT_PX, SHIFT_PX], [0, 0]], mode="SYMMETRIC")
    return tf.image.stateless_random_crop(padded, tf.shape(image), shift_key)


def _describe_exclusion(config, files, gan_test) -> dict | None:
    """The GAN test images a classifier was kept from, as a cache key: the draw's settings, the
    count and a SHA-1 of the sorted names (another draw, or another dataset, never matches)."""
    if not gan_test.any():
        return None
    names = "\n".join(sorted(f for f, g in zip(files, gan_test) if g))
    return {"attr": attributes.resolve(config.attr), "split_protocol": "paper",
            "split_test_per_attribute": int(config.split_test_per_attribute), "seed": int(config.seed),
            "images": int(gan_test.sum()), "sha1": hashlib.sha1(names.encode("utf-8")).hexdigest()}


def exclusion(config) -> dict | None:
    """What `split_plan` keeps out of the classifier's training: the GAN's test images (`gan_test_mask`)."""
    if config.get("split_protocol", "official") != "paper":
        return None
    files, labels, _ = _index(config)
    return _describe_exclusion(config, files, gan_test_mask(config, files, labels))
