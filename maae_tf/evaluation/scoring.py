"""The run's edits of test images as the evaluation scores them (docs/method.md §7): G(x, 0),
G(x, +δ0) and G(x, -δ0) of a batch (`edit_batch`), the flipping edit of each image
(`flip_deltas`), D's score of an image as a member of a class (`discriminator_scores`) and the
δ sweep (`sweep`). The evaluators (`maae_tf.evaluation.evaluators`) and the multi-attribute table
build on these."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from maae_tf.evaluation import classifier
from maae_tf.model.networks import NEGATIVE, POSITIVE


@dataclasses.dataclass(frozen=True)
class Edits:
    """A batch of test images x and the run's three edits of them (arrays [N, S, S, 3] in [-1, 1]).

    The flipping edit is G(x, +δ0) for a negative and G(x, -δ0) for a positive; the keeping edit is
    the other one. `offset`: the position of the batch's first image among all those evaluated.
    """

    images: np.ndarray
    masks: np.ndarray  # [N, S, S, 1], 1 = background
    positive: np.ndarray  # bool [N]: x's true label
    reconstruction: np.ndarray  # G(x, 0)
    plus: np.ndarray  # G(x, +δ0)
    minus: np.ndarray  # G(x, -δ0)
    offset: int = 0

    @property
    def flipped(self) -> np.ndarray:
        return np.where(self.positive[:, None, None, None], self.minus, self.plus)

    @property
    def kept(self) -> np.ndarray:
        return np.where(self.positive[:, None, None, None], self.plus, self.minus)


def edit_batch(model, images, masks, positive, delta_max: float, offset: int = 0) -> Edits:
    """G(x, 0), G(x, +δ0) and G(x, -δ0) of images [N, S, S, 3], generated as one batch of 3N."""
    x = np.asarray(images, np.float32)
    n, d0 = len(x), float(delta_max)
    deltas = np.concatenate([np.zeros(n), np.full(n, d0), np.full(n, -d0)]).astype(np.float32)
    recon, plus, minus = np.split(model.generate(tf.concat([x, x, x], 0), deltas).numpy(), 3)
    return Edits(x, np.asarray(masks, np.float32), np.asarray(positive, bool), recon, plus, minus, int(offset))


def flip_deltas(positive, delta_max: float) -> np.ndarray:
    """δ that flips each image's label: +δ0 for negatives, -δ0 for positives (float32 [N])."""
    positive = np.asarray(positive, bool)
    return np.where(positive, -float(delta_max), float(delta_max)).astype(np.float32)


def discriminator_scores(model, images, target_positive) -> np.ndarray:
    """sigmoid(D(images)) at the POSITIVE head where `target_positive`, else at the NEGATIVE head:
    how real D finds each image as a member of that class (float64 [N])."""
    logits = tf.cast(model.discriminator(tf.convert_to_tensor(images, tf.float32), training=False),
                     tf.float32).numpy()
    head = np.where(np.asarray(target_positive, bool), POSITIVE, NEGATIVE)
    picked = logits[np.arange(len(head)), head].astype(np.float64)
    return 1.0 / (1.0 + np.exp(-picked))


def sweep(model, images, judge_model, column: int, deltas) -> tuple[list[np.ndarray], np.ndarray]:
    """The δ sweep of paper Fig. 6: G(x, δ) for every δ in `deltas` (a list of [N, S, S, 3]) and the
    classifier's P(attribute) of each, [N, len(deltas)] (the attribute should grow steadily with δ)."""
    x = np.asarray(images, np.float32)
    edits = [model.generate(x, float(d)).numpy() for d in deltas]
    probs = [classifier.probabilities(judge_model, e)[:, column] for e in edits]
    return edits, np.stack(probs, axis=1).astype(np.float64)
