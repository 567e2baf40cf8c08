"""The independent attribute classifier of the evaluation protocol (DESIGN.md §7).

Its own network and weights (never the GAN's discriminator): a small multi-label CNN,
5 x (conv 3x3 stride 2 + batch norm + LeakyReLU), global average pooling, a dense layer with one
logit per attribute. It is trained on the TRAIN split of the dataset's labels (same crop and size
as the M-AAE run it judges, random horizontal flips), reports its accuracy on REAL test images, and
then judges whether G(x, ±δ0) carries the attribute (probability > 0.5).

Deterministic given the seed: initialisers, shuffling and flips are all seeded (stateless flips
keyed by the example index); on a GPU bit-exactness also needs
`tf.config.experimental.enable_op_determinism()`, which `maae_tf.evaluate` sets.

    model, info = load_or_train(config, ["Smiling"], "runs/x/eval/classifier")
    accuracy(model, config, ["Smiling"], split="test")   # {"Smiling": 0.93}
"""

from __future__ import annotations

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


def judge(model: keras.Model, images, index: int = 0) -> np.ndarray:
    """bool [N]: whether the classifier judges each image to carry attribute number `index` of
    the classifier's attributes (probability > 0.5, i.e. logit > 0)."""
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


def _identity(config, attrs, steps, batch, seed, width) -> dict:
    """What a cached classifier must match to be reused."""
    attr_file = os.path.join(config.data_dir, celeba.ATTR_FILE)
    return {
        "version": VERSION,
        "attrs": [attributes.resolve(a) for a in attrs],
        "image_size": int(config.image_size),
        "crop": [float(config.crop_top), float(config.crop_left), float(config.crop_height),
                 float(config.crop_width)],
        "data_dir": os.path.abspath(config.data_dir),
        "attr_file_bytes": os.path.getsize(attr_file) if os.path.isfile(attr_file) else None,
        "steps": int(steps),
        "batch": int(batch),
        "seed": int(seed),
        "width": float(width),
    }


def _write_json(path: str, obj) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def load_or_train(config, attrs, cache_dir: str, steps: int | None = None, batch: int | None = None,
                  seed: int | None = None, width: float = 1.0,
                  test_limit: int | None = None) -> tuple[keras.Model, dict]:
    """The classifier for `attrs`: reused from `cache_dir` when its JSON matches (attrs, image size,
    crop, data_dir, steps, batch, seed, width), otherwise trained (config.eval.classifier_steps x
    config.eval.classifier_batch unless given), tested on the test split and saved (weights to a
    temporary `.weights.h5` renamed into place, then the JSON). Returns (model, info); info holds
    the matched keys plus `test_accuracy` {name: accuracy}, `test_details` and `reused`."""
    steps = int(config.eval.classifier_steps if steps is None else steps)
    batch = int(config.eval.classifier_batch if batch is None else batch)
    seed = int(config.seed if seed is None else seed)
    names, _ = _columns(attrs)
    want = _identity(config, names, steps, batch, seed, width)
    info_path = os.path.join(cache_dir, INFO_FILE)
    weights_path = os.path.join(cache_dir, WEIGHTS_FILE)
    if os.path.isfile(info_path) and os.path.isfile(weights_path):
        try:
            with open(info_path, encoding="utf-8") as f:
                saved = json.load(f)
        except (OSError, ValueError):
            saved = {}
        if all(saved.get(k) == v for k, v in want.items()):
            model = build_classifier(want["image_size"], len(names), width=width, seed=seed)
            model.load_weights(weights_path)
            logging.info("reusing the attribute classifier in %s (test accuracy %s)", cache_dir,
                         saved.get("test_accuracy"))
            return model, dict(saved, reused=True)
        logging.info("the classifier cached in %s was trained with other settings: retraining", cache_dir)

    t0 = time.perf_counter()
    logging.info("training the attribute classifier for %s: %d steps of %d images", ", ".join(names),
                 steps, batch)
    model = train_classifier(config, names, steps, batch, seed=seed, width=width)
    details = accuracy(model, config, names, split="test", limit=test_limit, details=True)
    info = dict(want, test_accuracy={n: d["accuracy"] for n, d in details.items()}, test_details=details,
                train_seconds=round(time.perf_counter() - t0, 2))
    os.makedirs(cache_dir, exist_ok=True)
    if os.path.exists(info_path):
        os.remove(info_path)  # never a stale JSON beside new weights, should we stop in between
    tmp = os.path.join(cache_dir, "classifier.tmp.weights.h5")  # Keras wants the .weights.h5 suffix
    model.save_weights(tmp)
    os.replace(tmp, weights_path)
    _write_json(info_path, info)
    logging.info("attribute classifier test accuracy: %s", info["test_accuracy"])
    return model, dict(info, reused=False)
