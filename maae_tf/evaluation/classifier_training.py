"""The attribute classifier's network, its training and its accuracy on real images
(docs/method.md §7).

Its own network and weights (never the GAN's discriminator, nor any network a recipe trains
with): a small multi-label CNN, 5 x (conv 3x3 stride 2 + batch norm + LeakyReLU), global average
pooling, a dense layer with one logit per attribute. Trained on its own train split
(`maae_tf.evaluation.classifier_data`: same crop and size as the M-AAE runs it judges, random
horizontal flips and shifts) with a class-balanced loss and a cosine learning-rate decay.

Deterministic given the seed: initialisers, shuffling, flips and shifts are all seeded (stateless
flips and shifts keyed by the example index); on a GPU bit-exactness also needs
`tf.config.experimental.enable_op_determinism()`, which `maae_tf.evaluation.evaluate` sets.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging
from keras import layers

from maae_tf import progress
from maae_tf.evaluation import classifier_data

CHANNELS = (32, 64, 128, 256, 256)
LEARNING_RATE = 1e-3


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


def class_weights(labels01: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(weight of a positive, of a negative) per attribute: 0.5 / share of that class, so both
    classes weigh the same in the loss (balanced accuracy is what the judge is held to) and a
    balanced attribute keeps weights 1."""
    p = np.clip(labels01.mean(axis=0), 1.0 / len(labels01), 1.0 - 1.0 / len(labels01))
    return (0.5 / p).astype(np.float32), (0.5 / (1.0 - p)).astype(np.float32)


def train_classifier(config, attrs, steps: int, batch: int, seed: int | None = None,
                     width: float = 1.0, log_every: int = 100, plan: dict | None = None) -> keras.Model:
    """Trains a fresh classifier for `attrs` on the classifier's train split of config.data_dir
    (`classifier_data.split_plan`): Adam, LEARNING_RATE with a cosine decay to 0 over `steps`,
    class-balanced sigmoid cross-entropy (`class_weights`), `steps` batches of `batch` flipped and
    shifted images. Returns the model (decision at logit 0; `classifier.for_dataset` then moves it
    to its validation threshold)."""
    seed = int(config.seed if seed is None else seed)
    names, cols = classifier_data.attribute_columns(attrs)
    plan = classifier_data.split_plan(config, seed) if plan is None else plan
    model = build_classifier(int(config.image_size), len(names), width=width, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(LEARNING_RATE, int(steps))
    optimizer = keras.optimizers.Adam(schedule)
    optimizer.build(model.trainable_variables)
    train_labels01 = (plan["labels"][plan["role"] == classifier_data.TRAIN][:, cols] + 1) / 2
    w_pos, w_neg = (tf.constant(w) for w in class_weights(train_labels01))

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
    tracker = progress.Tracker(int(steps))
    data = iter(classifier_data.train_dataset(config, names, batch, seed, plan))
    for i in range(int(steps)):
        images, labels = next(data)
        loss, acc = step(images, labels)
        if log_every and ((i + 1) % log_every == 0 or i + 1 == steps):
            logging.info("classifier step %s | loss %.4f, batch accuracy %.3f (%.1f s)",
                         tracker.line(i + 1, "images", per_item=batch), float(loss), float(acc),
                         time.perf_counter() - t0)
    return model


def predict_logits(model: keras.Model, images) -> np.ndarray:
    """Logits [N, num_attrs] of images [N, S, S, 3] in [-1, 1] (inference mode)."""
    return np.asarray(model(tf.convert_to_tensor(images, tf.float32), training=False))


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


def logits_of(model: keras.Model, config, plan: dict, role: int, cols, batch: int = 64):
    """(logits [N, K], truths bool [N, K]) of the images of `role` for the label columns `cols`."""
    zs, ys = [], []
    for images, labels in classifier_data.role_images(config, plan, role).batch(int(batch)):
        zs.append(predict_logits(model, images))
        ys.append(labels.numpy()[:, cols] > 0.5)
    if not zs:
        return np.zeros((0, len(cols))), np.zeros((0, len(cols)), bool)
    return np.concatenate(zs), np.concatenate(ys)


def accuracy(model: keras.Model, config, attrs, split: str = "test", batch: int = 64, details: bool = False,
             seed: int | None = None, plan: dict | None = None) -> dict:
    """Per-attribute accuracy {name: share correct} on the REAL images of the classifier's `split`
    ("train", "val" or "test": `classifier_data.split_plan(config, seed)`). `attrs` must be the
    attributes the model was trained on, in order. With details=True each value is a dict: accuracy,
    balanced_accuracy, accuracy_positives (recall of the attribute), accuracy_negatives,
    num_images, num_positives, num_negatives."""
    names, cols = classifier_data.attribute_columns(attrs)
    plan = classifier_data.split_plan(config, seed) if plan is None else plan
    logits, truth = logits_of(model, config, plan, classifier_data.ROLE_NAMES[split], cols, batch)
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
