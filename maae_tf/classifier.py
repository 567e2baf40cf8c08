"""The independent attribute classifier of the evaluation protocol (docs/method.md §7).

Its own network and weights (never the GAN's discriminator): a small multi-label CNN,
5 x (conv 3x3 stride 2 + batch norm + LeakyReLU), global average pooling, a dense layer with one
logit per attribute. It is trained on the TRAIN split of the dataset's labels (same crop and size
as the M-AAE runs it judges, random horizontal flips), reports its accuracy per attribute on the
REAL test images, and then judges whether G(x, ±δ0) carries an attribute (probability > 0.5).

One classifier per dataset, image size and crop (`for_dataset`), covering every attribute the
train split can teach (`default_attrs`: both classes present; all 40 on CelebA): trained once by
`python -m maae_tf.train_classifier` or by the first evaluation that needs it, cached under
`default_dir(config)` and reused by every evaluation of every run on that dataset. It always uses
the official partition (list_eval_partition.txt), whatever the run's `split_protocol`, so that its
test accuracy is the figure peers report (94.5 % mean over CelebA's 40 attributes on the official
test split).

Deterministic given the seed: initialisers, shuffling and flips are all seeded (stateless flips
keyed by the example index); on a GPU bit-exactness also needs
`tf.config.experimental.enable_op_determinism()`, which `maae_tf.evaluate` sets.

    model, info = for_dataset(config, ["Smiling"])
    judge(model, images, column(info, "smiling"))       # bool [N]
    info["test_accuracy"]["Smiling"]                    # 0.93, on the real test images
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
from maae_tf.data import celeba
from maae_tf.files import write_text_atomic
from maae_tf.masks.segmenter import cache_dir as cache_root
from maae_tf.masks.segmenter import sha256_of

CHANNELS = (32, 64, 128, 256, 256)
LEARNING_RATE = 1e-3
VERSION = 1  # bump when the network or the training recipe changes (invalidates caches)
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


def train_dataset(config, attrs, batch: int, seed: int = 0) -> tf.data.Dataset:
    """Endless shuffled batches (images [b, S, S, 3], labels [b, len(attrs)] 0/1) of the train split,
    with seeded random horizontal flips."""
    names, cols = _columns(attrs)
    from maae_tf.data import records

    if records.is_prepared(config.data_dir):  # TFRecords from maae_tf.data.prepare
        ds = records.images_dataset(config, "train", batch_size=256).unbatch()
        ds = ds.map(lambda e: (e["image"], tf.gather(e["labels"], cols, axis=-1)))
        ds = ds.shuffle(int(config.shuffle_buffer), seed=seed, reshuffle_each_iteration=True).repeat()
    else:
        paths, labels = celeba.split_files(config, "train")
        if not paths:
            raise ValueError(f"the train split of {config.data_dir!r} is empty: the classifier needs images")
        y = ((labels[:, cols].astype(np.float32) + 1.0) / 2.0)
        ds = tf.data.Dataset.from_tensor_slices((tf.constant(paths, tf.string), y))
        ds = ds.shuffle(max(1, min(len(paths), int(config.shuffle_buffer))), seed=seed,
                        reshuffle_each_iteration=True).repeat()
        ds = ds.map(lambda path, label: (celeba.load_example(path, "", config)[0], label),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.enumerate()

    def flip(i, item):
        image, label = item
        image = tf.image.stateless_random_flip_left_right(image, tf.stack([tf.cast(seed, tf.int64), i]))
        return image, label

    ds = ds.map(flip, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(int(batch), drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def train_classifier(config, attrs, steps: int, batch: int, seed: int | None = None,
                     width: float = 1.0, log_every: int = 100) -> keras.Model:
    """Trains a fresh classifier for `attrs` on the train split of config.data_dir (Adam 1e-3,
    sigmoid cross-entropy, `steps` batches of `batch`). Returns the model."""
    seed = int(config.seed if seed is None else seed)
    names, _ = _columns(attrs)
    model = build_classifier(int(config.image_size), len(names), width=width, seed=seed)
    optimizer = keras.optimizers.Adam(LEARNING_RATE)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(labels, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        acc = tf.reduce_mean(tf.cast(tf.equal(tf.cast(logits > 0, tf.float32), labels), tf.float32))
        return loss, acc

    t0 = time.perf_counter()
    data = iter(train_dataset(config, names, batch, seed))
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
    (`column(info, attr)`; probability > 0.5, i.e. logit > 0)."""
    return predict_logits(model, images)[:, index] > 0.0


def accuracy(model: keras.Model, config, attrs, split: str = "test", limit: int | None = None,
             batch: int = 64, details: bool = False) -> dict:
    """Per-attribute accuracy {name: share correct} on the REAL images of `split` (the first
    `limit`, all when None). `attrs` must be the attributes the model was trained on, in order.
    With details=True each value is a dict: accuracy, accuracy_positives (recall of the attribute),
    accuracy_negatives, num_images, num_positives, num_negatives."""
    names, cols = _columns(attrs)
    correct = np.zeros(len(names))
    pos_hits, neg_hits = np.zeros(len(names)), np.zeros(len(names))
    n_pos, n_neg = np.zeros(len(names)), np.zeros(len(names))
    n = 0
    for b in celeba.images_dataset(config, split, limit=limit, batch_size=batch):
        pred = predict_logits(model, b["image"]) > 0.0
        truth = b["labels"].numpy()[:, cols] > 0.5
        correct += (pred == truth).sum(axis=0)
        pos_hits += (pred & truth).sum(axis=0)
        neg_hits += (~pred & ~truth).sum(axis=0)
        n_pos += truth.sum(axis=0)
        n_neg += (~truth).sum(axis=0)
        n += pred.shape[0]
    if n == 0:
        raise ValueError(f"the {split!r} split of {config.data_dir!r} has no images")
    if not details:
        return {name: float(correct[j] / n) for j, name in enumerate(names)}
    ratio = lambda a, b: float(a / b) if b else None
    return {name: {"accuracy": float(correct[j] / n),
                   "accuracy_positives": ratio(pos_hits[j], n_pos[j]),
                   "accuracy_negatives": ratio(neg_hits[j], n_neg[j]),
                   "num_images": int(n), "num_positives": int(n_pos[j]), "num_negatives": int(n_neg[j])}
            for j, name in enumerate(names)}


def probabilities(model: keras.Model, images) -> np.ndarray:
    """Probabilities [N, num_attrs] (sigmoid of the logits) of images [N, S, S, 3] in [-1, 1]."""
    return 1.0 / (1.0 + np.exp(-predict_logits(model, images).astype(np.float64)))


# ------------------------------------------------------------------------- the dataset's classifier


def _official(config):
    """`config` with the official partition: the classifier's train and test splits never depend
    on a run's attribute (the paper protocol draws its test split per attribute)."""
    if config.get("split_protocol", "official") == "official":
        return config
    official = copy.deepcopy(config)
    with official.unlocked():
        official.split_protocol = "official"
    return official


def _split_labels(config, split: str) -> np.ndarray:
    """Labels (int8 [N, 40], ±1) of one split of the official partition, files or TFRecords."""
    from maae_tf.data import records

    celeba.check_layout(config.data_dir)
    if records.is_prepared(config.data_dir):
        _, labels01, splits, _ = records.read_index(config.data_dir)
        return (labels01[splits == records.SPLIT_CODES[split]] * 2 - 1).astype(np.int8)
    return celeba.split_files(_official(config), split)[1]


def default_attrs(config) -> list[str]:
    """The CelebA attributes (in `attributes.CELEBA_ATTRIBUTES` order) whose TRAIN split has both
    positives and negatives: what a classifier can learn from this dataset (all 40 on CelebA)."""
    labels = _split_labels(config, "train")
    if not len(labels):
        raise ValueError(f"the train split of {config.data_dir!r} is empty: the classifier needs images")
    varies = (labels > 0).any(axis=0) & (labels < 0).any(axis=0)
    return [name for name, v in zip(attributes.CELEBA_ATTRIBUTES, varies) if v]


def _crop(config) -> list[float]:
    return [float(config.crop_top), float(config.crop_left), float(config.crop_height), float(config.crop_width)]


def default_dir(config) -> str:
    """Where the classifier of config's dataset, image size and crop lives: config.eval.classifier_dir
    when set, else `<cache>/classifiers/<dataset folder name>-<8 hex>-<S>px` (cache:
    $MAAE_TF_CACHE, else ~/.cache/maae_tf; the hex: SHA-1 of the data_dir with symlinks resolved, crop and S)."""
    chosen = config.eval.get("classifier_dir", "")
    if chosen:
        return chosen
    data_dir = os.path.realpath(config.data_dir)
    key = json.dumps([data_dir, _crop(config), int(config.image_size)])
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return os.path.join(cache_root(), "classifiers",
                        f"{os.path.basename(data_dir)}-{digest}-{int(config.image_size)}px")


def column(info: dict, attr: str) -> int:
    """Index of attribute `attr` (any name `attributes.resolve` accepts) among the outputs of the
    classifier that `info` describes (`info["attrs"]`)."""
    name = attributes.resolve(attr)
    if name not in info["attrs"]:
        raise ValueError(f"the attribute classifier has no output for {name}; its attributes: "
                         + ", ".join(info["attrs"]))
    return info["attrs"].index(name)


def _identity(config, steps, batch, seed, width) -> dict:
    """What a cached classifier must match to be reused (besides holding the attributes asked for)."""
    attr_file = os.path.join(config.data_dir, celeba.ATTR_FILE)
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
    from maae_tf.config import base_config

    if _crop(config) != _crop(base_config()):
        cmd += " --workdir=<a run with this crop>"
    return cmd


def for_dataset(config, attrs=None, cache_dir: str | None = None, steps: int | None = None,
                batch: int | None = None, seed: int | None = None, width: float = 1.0,
                train_if_missing: bool = True) -> tuple[keras.Model, dict]:
    """The classifier of config's dataset, image size and crop, for attributes `attrs` (names or
    aliases; default: those the cached classifier holds, else `default_attrs(config)`).

    Reused from `cache_dir` (default `default_dir(config)`) when it was trained with these settings
    (steps and batch default to config.eval.classifier_steps / classifier_batch, seed to
    config.seed) on the same dataset and covers `attrs`; otherwise trained on default_attrs ∪ attrs
    (CelebA order), tested on the test split and saved (the JSON removed, the weights written to a
    temporary `.weights.h5` renamed into place, then the JSON). With train_if_missing=False a
    missing classifier raises FileNotFoundError naming the folder and the command that trains it.

    Returns (model, info): info["attrs"] are the model's output columns in order (`column` finds
    one), `test_accuracy` {name: accuracy on the real test images}, `test_details` {name:
    `accuracy(..., details=True)`'s dict}, `mean_test_accuracy`, `train_seconds` (of the
    training that made it), `reused`, `path` (the weights file) and the settings it was trained
    with."""
    config = _official(config)
    steps = int(config.eval.classifier_steps if steps is None else steps)
    batch = int(config.eval.classifier_batch if batch is None else batch)
    seed = int(config.seed if seed is None else seed)
    folder = cache_dir or default_dir(config)
    celeba.check_layout(config.data_dir)
    want = _identity(config, steps, batch, seed, width)
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    saved = _cached(folder, want)
    names = None if attrs is None else _columns(attrs)[0]
    if saved is not None and (names is None or set(names) <= set(saved["attrs"])):
        model = build_classifier(want["image_size"], len(saved["attrs"]), width=width, seed=seed)
        model.load_weights(weights_path)
        logging.info("reusing the attribute classifier in %s (mean test accuracy %.4f over %d attributes)",
                     folder, saved["mean_test_accuracy"], len(saved["attrs"]))
        return model, dict(saved, reused=True, path=weights_path)

    wanted = set(default_attrs(config)) | set(names or ())
    names = [a for a in attributes.CELEBA_ATTRIBUTES if a in wanted]
    if not train_if_missing:
        raise FileNotFoundError(
            f"no attribute classifier with these settings and attributes in {folder}; train it with:\n  "
            + _command(config, names, steps, batch, seed, width))
    if not len(_split_labels(config, "test")):
        raise ValueError(f"the test split of {config.data_dir!r} is empty: the classifier is tested on it")
    t0 = time.perf_counter()
    logging.info("training the attribute classifier of %s (%d attributes): %d steps of %d images",
                 config.data_dir, len(names), steps, batch)
    model = train_classifier(config, names, steps, batch, seed=seed, width=width)
    details = accuracy(model, config, names, split="test", details=True)
    test_accuracy = {n: d["accuracy"] for n, d in details.items()}
    info = dict(want, attrs=names, test_accuracy=test_accuracy, test_details=details,
                mean_test_accuracy=float(np.mean(list(test_accuracy.values()))),
                train_seconds=round(time.perf_counter() - t0, 2))
    os.makedirs(folder, exist_ok=True)
    info_path = os.path.join(folder, INFO_FILE)
    if os.path.exists(info_path):
        os.remove(info_path)  # never a stale JSON beside new weights, should we stop in between
    tmp = os.path.join(folder, f"classifier.tmp-{os.getpid()}.weights.h5")  # Keras wants the suffix
    model.save_weights(tmp)
    info["weights_sha256"] = sha256_of(tmp)
    os.replace(tmp, weights_path)
    write_text_atomic(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    logging.info("attribute classifier saved in %s: mean test accuracy %.4f", folder, info["mean_test_accuracy"])
    return model, dict(info, reused=False, path=weights_path)
