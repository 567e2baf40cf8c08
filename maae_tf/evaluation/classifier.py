"""The independent attribute classifier of the evaluation protocol (docs/method.md §7).

Its own network and weights (never the GAN's discriminator, nor any network a recipe trains
with): a small multi-label CNN, 5 x (conv 3x3 stride 2 + batch norm + LeakyReLU), global average
pooling, a dense layer with one logit per attribute. Trained on its own train split (same crop
and size as the M-AAE runs it judges, random horizontal flips and shifts of up to SHIFT_PX pixels:
`augment`) with a class-balanced loss and a cosine learning-rate decay; where the folder has an
official val split, each attribute's decision threshold is then chosen there to maximise the
balanced accuracy and folded into the logits' bias, so it judges whether G(x, ±δ0) carries an
attribute by probability > 0.5. It reports its balanced and plain accuracy per attribute on its
REAL held-out images.

Splits (`split_plan`): the official partition (list_eval_partition.txt) where it has a test
split, so that the figure compares with peers' (94.5 % mean accuracy over CelebA's 40
attributes on the official test split); a folder without one (the dev set, any user's sample)
gets its own, drawn by seed from the file names: HELD_OUT_SHARE of the images held out, the rest
for training. Under the paper protocol the images a run is evaluated on (its
`split_test_per_attribute` test images of config.attr) never train the classifier nor choose its
thresholds, and are dropped from a held-out split of its own; the line `split_note` says so.

One classifier per dataset, image size, crop, excluded GAN test images and attribute set
(`for_dataset`, `default_dir`): an evaluation asks for the one attribute its run edits (a judge
of one attribute is better than one of 40 sharing a small network: docs/method.md §7);
`python -m maae_tf.train_classifier --attrs=all` trains every attribute its train split can teach
(`default_attrs`: both classes present; all 40 on CelebA) for the comparison with peers. Trained
once by that command or by the first evaluation that needs it, cached under
`default_dir(config, attrs)` and reused by every evaluation of every run with that dataset, those
test images and that attribute.

Deterministic given the seed: initialisers, shuffling, flips and shifts are all seeded (stateless
flips and shifts keyed by the example index); on a GPU bit-exactness also needs
`tf.config.experimental.enable_op_determinism()`, which `maae_tf.evaluation.evaluate` sets.

    model, info = for_dataset(config, ["Smiling"])
    judge(model, images, column(info, "smiling"))       # bool [N]
    info["test_details"]["Smiling"]["balanced_accuracy"]  # 0.91, on the real held-out images
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import layers

from maae_tf import attributes
from maae_tf.data import celeba, layout, pipeline, records, splits
from maae_tf.files import write_text_atomic
from maae_tf.data.masks.segmenter import cache_dir as cache_root
from maae_tf.data.masks.segmenter import sha256_of

CHANNELS = (32, 64, 128, 256, 256)
LEARNING_RATE = 1e-3
SHIFT_PX = 2  # the largest shift of a training image (`augment`): 3 cost Mouth_Slightly_Open 0.03
HELD_OUT_SHARE = 0.12  # of the images, held out by seed where the folder has no official test split
VERSION = 3  # bump when the network or the training recipe changes (invalidates caches)
WEIGHTS_FILE = "classifier.weights.h5"
INFO_FILE = "classifier.json"


def build_classifier(image_size: int, num_attrs: int, width: float = 1.0, seed: int = 0) -> keras.Model:
    """Image [S, S, 3] in [-1, 1] -> logits [num_attrs] (float32). Channels of `CHANNELS` x width."""
    x_in = keras.Input((image_size, image_size, 3), name="image")
    x = x_in
    for i, c in enumerate(CHANNELS):
        x = layers.Conv2D(max(4, int(round(c * width))), 3, strides=2, padding="same", use_bias=False,
                          kernel_initializer=keras.initializers.HeNormal(seed=seed * 97 + i),
                          name=f"conv{i + 1}")(x)
        x = layers.BatchNormalization(name=f"bn{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    out = layers.Dense(num_attrs, kernel_initializer=keras.initializers.GlorotUniform(seed=seed * 97 + 50),
                       dtype="float32", name="logits")(x)
    return keras.Model(x_in, out, name="attribute_classifier")


def _columns(attrs) -> tuple[list[str], list[int]]:
    names = [attributes.resolve(a) for a in attrs]
    if not names:
        raise ValueError("attrs is empty: name at least one attribute")
    return names, [attributes.index(n) for n in names]


# ------------------------------------------------------------------------------ the classifier's splits

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


def _source(config, plan: dict, role: int, shuffle_seed: int | None = None) -> tf.data.Dataset:
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
    _, cols = _columns(attrs)
    plan = split_plan(config, seed) if plan is None else plan
    count = plan["counts"]["train"]
    if not count:
        raise ValueError(f"the classifier's train split of {config.data_dir!r} is empty: it needs images")
    ds = _source(config, plan, TRAIN, shuffle_seed=seed).map(lambda image, label: (image, tf.gather(label, cols)))
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


def class_weights(labels01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight of a positive, of a negative) per attribute: 0.5 / share of that class, so both
    classes weigh the same in the loss (balanced accuracy is what the judge is held to) and a
    balanced attribute keeps weights 1."""
    p = np.clip(labels01.mean(axis=0), 1.0 / len(labels01), 1.0 - 1.0 / len(labels01))
    return (0.5 / p).astype(np.float32), (0.5 / (1.0 - p)).astype(np.float32)


def train_classifier(config, attrs, steps: int, batch: int, seed: int | None = None,
                     width: float = 1.0, log_every: int = 100, plan: dict | None = None) -> keras.Model:
    """Trains a fresh classifier for `attrs` on the classifier's train split of config.data_dir
    (`split_plan`): Adam, LEARNING_RATE with a cosine decay to 0 over `steps`, class-balanced
    sigmoid cross-entropy (`class_weights`), `steps` batches of `batch` flipped and shifted images.
    Returns the model (decision at logit 0; `for_dataset` then moves it to its validation threshold)."""
    seed = int(config.seed if seed is None else seed)
    names, cols = _columns(attrs)
    plan = split_plan(config, seed) if plan is None else plan
    model = build_classifier(int(config.image_size), len(names), width=width, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, int(steps))
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)
    w_pos, w_neg = (tf.constant(w) for w in class_weights((plan["labels"][plan["role"] == TRAIN][:, cols] + 1) / 2))

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            per_label = tf.nn.sigmoid_cross_entropy_with_logits(labels, logits)
            loss = tf.reduce_mean(per_label * (labels * w_pos + (1.0 - labels) * w_neg))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), labels), tf.float32))
        return loss, acc

    t0 = time.perf_counter()
    data = iter(train_dataset(config, names, batch, seed, plan))
    for i in range(int(steps)):
        images, labels = next(data)
        loss, acc = step(images, labels)
        if log_every and ((i + 1) % log_every == 0 or i + 1 == steps):
            logging.info("classifier step %d/%d: loss %.4f, batch accuracy %.3f (%.1f s)", i + 1, steps,
                         float(loss), float(acc), time.perf_counter() - t0)
    return model


def predict_logits(model: keras.Model, images) -> np.ndarray:
    """Logits [N, num_attrs] of images [N, S, S, 3] in [-1, 1] (inference mode)."""
    return np.asarray(model(tf.convert_to_tensor(images, tf.float32), training=False))


def judge(model: keras.Model, images, index: int) -> np.ndarray:
    """bool [N]: whether the classifier judges each image to carry its attribute number `index`
    (`column(info, attr)`; probability > 0.5, i.e. logit > 0: `for_dataset` folds each attribute's
    validation threshold into the logits' bias)."""
    return predict_logits(model, images)[:, index] > 0.0


def balanced_accuracy(predicted, truth) -> np.ndarray:
    """Per column of bool [N, K] predictions and truths: the mean of the accuracy on the positives
    and on the negatives (NaN where the truth lacks a class). Chance is 0.5 whatever the class
    shares, where plain accuracy rewards always answering the majority class."""
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    with np.errstate(invalid="ignore", divide="ignore"):
        on_pos = (predicted & truth).sum(axis=0) / truth.sum(axis=0)
        on_neg = (~predicted & ~truth).sum(axis=0) / (~truth).sum(axis=0)
    return 0.5 * (on_pos + on_neg)


def choose_thresholds(logits, truth) -> np.ndarray:
    """Per column of logits [N, K]: the decision threshold that maximises the balanced accuracy
    against bool truths [N, K] (the nearest to 0 among ties: a flat optimum keeps the trained
    boundary); 0 where a class is missing."""
    logits, truth = np.asarray(logits, np.float64), np.asarray(truth, bool)
    out = np.zeros(logits.shape[1])
    for j in range(logits.shape[1]):
        z, y = logits[:, j], truth[:, j]
        if y.all() or not y.any():
            continue
        u = np.unique(z)
        candidates = np.concatenate([[u[0] - 1.0], (u[1:] + u[:-1]) / 2, [0.0]])
        # sorted logits: positives above t and negatives at or below t, for every candidate at once
        pos_above = y.sum() - np.searchsorted(np.sort(z[y]), candidates, side="right")
        neg_below = np.searchsorted(np.sort(z[~y]), candidates, side="right")
        score = 0.5 * (pos_above / y.sum() + neg_below / (~y).sum())
        best = np.flatnonzero(score >= score.max() - 1e-12)
        out[j] = candidates[best[np.argmin(np.abs(candidates[best]))]]
    return out


def _logits_of(model: keras.Model, config, plan: dict, role: int, cols, batch: int = 64):
    """(logits [N, K], truths bool [N, K]) of the images of `role` for the label columns `cols`."""
    zs, ys = [], []
    for images, labels in _source(config, plan, role).batch(int(batch)):
        zs.append(predict_logits(model, images))
        ys.append(labels.numpy()[:, cols] > 0.5)
    if not zs:
        return np.zeros((0, len(cols))), np.zeros((0, len(cols)), bool)
    return np.concatenate(zs), np.concatenate(ys)


def accuracy(model: keras.Model, config, attrs, split: str = "test", batch: int = 64, details: bool = False,
             seed: int | None = None, plan: dict | None = None) -> dict:
    """Per-attribute accuracy {name: share correct} on the REAL images of the classifier's `split`
    ("train", "val" or "test": `split_plan(config, seed)`). `attrs` must be the attributes the model
    was trained on, in order. With details=True each value is a dict: accuracy,
    balanced_accuracy, accuracy_positives (recall of the attribute), accuracy_negatives,
    num_images, num_positives, num_negatives."""
    names, cols = _columns(attrs)
    plan = split_plan(config, seed) if plan is None else plan
    logits, truth = _logits_of(model, config, plan, ROLE_NAMES[split], cols, batch)
    if not len(truth):
        raise ValueError(f"the classifier's {split!r} split of {config.data_dir!r} has no images")
    pred = logits > 0.0
    correct = (pred == truth).mean(axis=0)
    if not details:
        return {name: float(correct[j]) for j, name in enumerate(names)}
    balanced = balanced_accuracy(pred, truth)
    ratio = lambda a, b: float(a / b) if b else None
    return {name: {"accuracy": float(correct[j]),
                   "balanced_accuracy": None if np.isnan(balanced[j]) else float(balanced[j]),
                   "accuracy_positives": ratio((pred & truth)[:, j].sum(), truth[:, j].sum()),
                   "accuracy_negatives": ratio((~pred & ~truth)[:, j].sum(), (~truth)[:, j].sum()),
                   "num_images": int(len(truth)), "num_positives": int(truth[:, j].sum()),
                   "num_negatives": int((~truth)[:, j].sum())}
            for j, name in enumerate(names)}


def probabilities(model: keras.Model, images) -> np.ndarray:
    """Probabilities [N, num_attrs] (sigmoid of the logits) of images [N, S, S, 3] in [-1, 1]."""
    return 1.0 / (1.0 + np.exp(-predict_logits(model, images).astype(np.float64)))


# ------------------------------------------------------------------------- the dataset's classifier


def default_attrs(config, seed: int | None = None, plan: dict | None = None) -> list[str]:
    """The CelebA attributes (in `attributes.CELEBA_ATTRIBUTES` order) whose classifier train split
    has both positives and negatives: what a classifier can learn from this dataset (all 40 on CelebA)."""
    plan = split_plan(config, seed) if plan is None else plan
    labels = plan["labels"][plan["role"] == TRAIN]
    if not len(labels):
        raise ValueError(f"the classifier's train split of {config.data_dir!r} is empty: it needs images")
    varies = (labels > 0).any(axis=0) & (labels < 0).any(axis=0)
    return [name for name, v in zip(attributes.CELEBA_ATTRIBUTES, varies) if v]


def _crop(config) -> list[float]:
    return [float(config.crop_top), float(config.crop_left), float(config.crop_height), float(config.crop_width)]


def _describe_exclusion(config, files, gan_test) -> dict | None:
    """The GAN test images a classifier was kept from, as a cache key: the draw's settings, the
    count and a SHA-1 of the sorted names (another draw, or another dataset, never matches)."""
    if not gan_test.any():
        return None
    names = "\n".join(sorted(f for f, g in zip(files, gan_test) if g))
    return {"attr": attributes.resolve(config.attr), "split_protocol": "paper",
            "split_test_per_attribute": int(config.split_test_per_attribute), "seed": int(config.seed),
            "images": int(gan_test.sum()), "sha1": hashlib.sha1(names.encode("utf-8")).hexdigest()}


def _exclusion(config) -> dict | None:
    """What `split_plan` keeps out of the classifier's training: the GAN's test images (`gan_test_mask`)."""
    if config.get("split_protocol", "official") != "paper":
        return None
    files, labels, _ = _index(config)
    return _describe_exclusion(config, files, gan_test_mask(config, files, labels))


def _attr_set(attrs) -> list[str]:
    """Official names of `attrs`, once each, in CelebA order: the classifier's output columns."""
    names = set(_columns(attrs)[0])
    return [a for a in attributes.CELEBA_ATTRIBUTES if a in names]


def default_dir(config, attrs=None) -> str:
    """Where the classifier of config's dataset, image size, crop and attributes lives:
    config.eval.classifier_dir when set, else
    `<cache>/classifiers/<dataset folder name>-<8 hex>-<S>px[-without-<attr>-test]/<attributes>`
    (cache: $MAAE_TF_CACHE, else ~/.cache/maae_tf; the hex: SHA-1 of the data_dir with symlinks
    resolved, crop, S and the GAN test images it must not train on, so runs of two attributes under
    the paper protocol each keep their own classifier instead of retraining one in turn;
    <attributes>: `all` for `default_attrs` (attrs None), else the names joined by `+`, or their
    count and a hash when there are more than 3)."""
    chosen = config.eval.get("classifier_dir", "")
    if chosen:
        return chosen
    if attrs is None:
        leaf = "all"
    else:
        names = _attr_set(attrs)
        leaf = ("+".join(names) if len(names) <= 3 else
                f"{len(names)}-attributes-{hashlib.sha1(' '.join(names).encode('utf-8')).hexdigest()[:8]}")
    data_dir = os.path.realpath(config.data_dir)
    exclusion = _exclusion(config)
    key = json.dumps([data_dir, _crop(config), int(config.image_size)] + ([exclusion] if exclusion else []),
                     sort_keys=True)
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    suffix = f"-without-{exclusion['attr']}-test" if exclusion else ""
    return os.path.join(cache_root(), "classifiers",
                        f"{os.path.basename(data_dir)}-{digest}-{int(config.image_size)}px{suffix}", leaf)


def column(info: dict, attr: str) -> int:
    """Index of attribute `attr` (any name `attributes.resolve` accepts) among the outputs of the
    classifier that `info` describes (`info["attrs"]`)."""
    name = attributes.resolve(attr)
    if name not in info["attrs"]:
        raise ValueError(f"the attribute classifier has no output for {name}; its attributes: "
                         + ", ".join(info["attrs"]))
    return info["attrs"].index(name)


def _identity(config, steps, batch, seed, width, plan) -> dict:
    """What a cached classifier must match to be reused (besides holding the attributes asked for)."""
    attr_file = os.path.join(config.data_dir, layout.ATTR_FILE)
    return {
        "version": VERSION,
        "image_size": int(config.image_size),
        "crop": _crop(config),
        "data_dir": os.path.realpath(config.data_dir),
        "attr_file_bytes": os.path.getsize(attr_file) if os.path.isfile(attr_file) else None,
        "steps": int(steps),
        "batch": int(batch),
        "seed": int(seed),
        "width": float(width),
        "split": {"test": plan["test_source"], "val": plan["val_source"], "counts": plan["counts"],
                  "held_out_share": HELD_OUT_SHARE},
        "excluded": plan["exclusion"],
    }


def _cached(folder: str, want: dict) -> dict | None:
    """The saved info of the classifier in `folder` when its identity is `want` and its weights
    file is the one the info was written with (two writers racing leave no mismatched pair)."""
    info_path, weights_path = os.path.join(folder, INFO_FILE), os.path.join(folder, WEIGHTS_FILE)
    if not (os.path.isfile(info_path) and os.path.isfile(weights_path)):
        return None
    try:
        with open(info_path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if any(saved.get(k) != v for k, v in want.items()):
        logging.info("the classifier cached in %s was trained with other settings", folder)
        return None
    if saved.get("weights_sha256") != sha256_of(weights_path):
        logging.warning("%s does not match %s (written by another process?)", WEIGHTS_FILE, INFO_FILE)
        return None
    return saved


def _command(config, attrs, steps, batch, seed, width) -> str:
    """The train_classifier command line that trains the classifier `for_dataset` asked for."""
    cmd = (f"python -m maae_tf.train_classifier --data_dir={os.path.abspath(config.data_dir)} "
           f"--image_size={int(config.image_size)} --steps={steps} --batch={batch} --seed={seed} "
           f"--width={width:g} --attrs={','.join(attrs)}")
    if config.get("split_protocol", "official") == "paper":
        cmd += (f" --split_protocol=paper --attr={attributes.snake(attributes.resolve(config.attr))} "
                f"--split_test_per_attribute={int(config.split_test_per_attribute)} --split_seed={int(config.seed)}")
    from maae_tf.config import base_config

    if _crop(config) != _crop(base_config()):
        cmd += " --workdir=<a run with this crop>"
    return cmd


def for_dataset(config, attrs=None, cache_dir: str | None = None, steps: int | None = None,
                batch: int | None = None, seed: int | None = None, width: float = 1.0,
                train_if_missing: bool = True) -> tuple[keras.Model, dict]:
    """The classifier of config's dataset, image size and crop, for exactly the attributes `attrs`
    (names or aliases; None: `default_attrs(config)`, every one its train split can teach), never
    trained on the images a run of `config` is evaluated on (`split_plan`). A judge of the one
    attribute a run edits: on the dev set at 64 px, Mouth_Slightly_Open scores 0.889 balanced
    accuracy alone and 0.863 as one of 40 outputs (the 40 share the small network's capacity).

    Reused from `cache_dir` (default `default_dir(config, attrs)`) when it was trained with these
    settings (steps and batch default to config.eval.classifier_steps / classifier_batch, seed to
    config.seed), on the same splits with the same GAN test images kept out, for these attributes;
    otherwise trained on them (CelebA order), each attribute's decision threshold
    chosen on the classifier's validation images (`choose_thresholds`, folded into the logits'
    bias), tested on its held-out images and saved (the JSON removed, the weights written to a
    temporary `.weights.h5` renamed into place, then the JSON). With train_if_missing=False a
    missing classifier raises FileNotFoundError naming the folder and the command that trains it.

    Returns (model, info): info["attrs"] are the model's output columns in order (`column` finds
    one), `test_accuracy` {name: accuracy on the held-out real images}, `test_details` {name:
    `accuracy(..., details=True)`'s dict, with balanced_accuracy}, `mean_test_accuracy`,
    `mean_test_balanced_accuracy`, `thresholds` {name: the logit moved to 0}, `split_note` (the
    line that says what it trained and was tested on), `train_seconds` (of the training that made
    it), `reused`, `path` (the weights file) and the settings it was trained with."""
    steps = int(config.eval.classifier_steps if steps is None else steps)
    batch = int(config.eval.classifier_batch if batch is None else batch)
    seed = int(config.seed if seed is None else seed)
    plan = split_plan(config, seed)
    names = default_attrs(config, plan=plan) if attrs is None else _attr_set(attrs)
    folder = cache_dir or default_dir(config, None if attrs is None else names)
    want = dict(_identity(config, steps, batch, seed, width, plan), attrs=names)
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    saved = _cached(folder, want)
    if saved is not None:
        model = build_classifier(want["image_size"], len(saved["attrs"]), width=width, seed=seed)
        model.load_weights(weights_path)
        logging.info("reusing the attribute classifier in %s (mean balanced accuracy %.4f over %d attributes); %s",
                     folder, saved["mean_test_balanced_accuracy"], len(saved["attrs"]), saved["split_note"])
        return model, dict(saved, reused=True, path=weights_path)

    if not train_if_missing:
        raise FileNotFoundError(
            f"no attribute classifier with these settings and attributes in {folder}; train it with:\n  "
            + _command(config, names, steps, batch, seed, width))
    if not plan["counts"]["test"]:
        raise ValueError(f"the classifier's held-out split of {config.data_dir!r} is empty: it is tested on it")
    note = split_note(plan, config)
    logging.info("training the attribute classifier of %s (%d attributes): %d steps of %d images; %s",
                 config.data_dir, len(names), steps, batch, note)
    t0 = time.perf_counter()
    model = train_classifier(config, names, steps, batch, seed=seed, width=width, plan=plan)
    cols = _columns(names)[1]
    thresholds = choose_thresholds(*_logits_of(model, config, plan, VAL, cols))
    bias = model.get_layer("logits").bias
    bias.assign(bias - tf.constant(thresholds, bias.dtype))  # judge, probabilities: the threshold is logit 0
    train_seconds = time.perf_counter() - t0
    details = accuracy(model, config, names, split="test", details=True, plan=plan)
    test_accuracy = {n: d["accuracy"] for n, d in details.items()}
    balanced = [d["balanced_accuracy"] for d in details.values() if d["balanced_accuracy"] is not None]
    info = dict(want, attrs=names, test_accuracy=test_accuracy, test_details=details,
                mean_test_accuracy=float(np.mean(list(test_accuracy.values()))),
                mean_test_balanced_accuracy=float(np.mean(balanced)) if balanced else None,
                thresholds={n: float(t) for n, t in zip(names, thresholds)}, split_note=note,
                train_seconds=round(train_seconds, 2))
    os.makedirs(folder, exist_ok=True)
    info_path = os.path.join(folder, INFO_FILE)
    if os.path.exists(info_path):
        os.remove(info_path)  # never a stale JSON beside new weights, should we stop in between
    tmp = os.path.join(folder, f"classifier.tmp-{os.getpid()}.weights.h5")  # Keras wants the suffix
    model.save_weights(tmp)
    info["weights_sha256"] = sha256_of(tmp)
    os.replace(tmp, weights_path)
    write_text_atomic(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    logging.info("attribute classifier saved in %s: mean balanced accuracy %.4f", folder,
                 info["mean_test_balanced_accuracy"] or float("nan"))
    return model, dict(info, reused=False, path=weights_path)
