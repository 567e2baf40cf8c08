"""The evaluators: one object per family of metrics, shared by the evaluation command
(`maae_tf.evaluation.evaluate`) and the in-training evaluation (`maae_tf.training.callbacks`),
so both compute the same numbers. What each metric measures: docs/method.md §7; their keys,
titles and tags: `maae_tf.evaluation.registry`.

An evaluator scores each batch of `scoring.Edits` (`score`: arrays of one value per image, or
per image of a subset), then turns the scores of all batches into the means of its metrics, each
with `<key>_count`, the images (or (image, edit) pairs) it averages (`summarize`; non-finite
values, e.g. of an empty mask, are left out). `run` generates each batch's edits once and feeds
them to every evaluator.
"""

from __future__ import annotations

import time

import numpy as np

from maae_tf.evaluation import classifier
from maae_tf.evaluation import classifier_training
from maae_tf.evaluation import identity as face_identity
from maae_tf.evaluation import metrics
from maae_tf.evaluation import scoring

BATCH = 32  # test images an evaluation reads and edits at once


def means(parts: dict) -> dict:
    """{key: mean of the finite values, key_count: how many} for every array of `parts`."""
    out = {}
    for key, values in parts.items():
        out[key], out[key + "_count"] = metrics.mean_finite(values)
    return out


class Evaluator:
    """One family of metrics: per-image scores of each batch, then their means."""

    def score(self, model, edits: scoring.Edits) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def summarize(self, scores: dict[str, np.ndarray], positive: np.ndarray) -> dict:
        raise NotImplementedError


class EditEvaluator(Evaluator):
    """The judge (the dataset's attribute classifier, output `column`) on the flipping edits
    (attribute_accuracy, _plus over negatives, _minus over positives), on the keeping edits
    (attribute_keep_accuracy), on G(x, 0) (reconstruction_attribute_accuracy, and _positives,
    _negatives) and on the photos themselves (classifier_accuracy_eval_images, and _positives,
    _negatives; classifier_balanced_accuracy_eval_images: the ceiling of the others)."""

    def __init__(self, judge_model, column: int):
        self.judge_model, self.column = judge_model, int(column)

    def _positive(self, images) -> np.ndarray:
        return classifier.probabilities(self.judge_model, images)[:, self.column] > 0.5

    def score(self, model, edits):
        positive = edits.positive
        return {"real_positive": self._positive(edits.images),
                "edit_success": self._positive(edits.flipped) == ~positive,
                "keep_success": self._positive(edits.kept) == positive,
                "reconstruction_kept": self._positive(edits.reconstruction) == positive}

    def summarize(self, scores, positive):
        ok = np.asarray(scores["edit_success"], np.float64)
        kept = np.asarray(scores["reconstruction_kept"], np.float64)
        # per class beside the photos' own: which class G(x, 0) loses, against the judge's ceiling
        read_right = np.asarray(scores["real_positive"] == positive, np.float64)
        out = means({"attribute_accuracy_plus": ok[~positive], "attribute_accuracy_minus": ok[positive],
                     "attribute_accuracy": ok,
                     "attribute_keep_accuracy": np.asarray(scores["keep_success"], np.float64),
                     "reconstruction_attribute_accuracy": kept,
                     "reconstruction_attribute_accuracy_positives": kept[positive],
                     "reconstruction_attribute_accuracy_negatives": kept[~positive],
                     "classifier_accuracy_eval_images": read_right,
                     "classifier_accuracy_eval_positives": read_right[positive],
                     "classifier_accuracy_eval_negatives": read_right[~positive]})
        balanced = classifier_training.balanced_accuracy(scores["real_positive"][:, None], positive[:, None])[0]
        out["classifier_balanced_accuracy_eval_images"] = None if np.isnan(balanced) else float(balanced)
        out["classifier_balanced_accuracy_eval_images_count"] = int(positive.size)
        return out


class PixelEvaluator(Evaluator):
    """PSNR, L1 and (with `ssim`) SSIM of x against both G(x, ±δ0) over the background mask
    (background_<m>, both edits; _plus, _minus) and against G(x, 0) over the whole image
    (reconstruction_<m>)."""

    def __init__(self, ssim: bool = True):
        self.names = ("psnr", "ssim", "l1") if ssim else ("psnr", "l1")

    def score(self, model, edits):
        x, masks = edits.images, edits.masks
        out = {}
        for name in self.names:
            measure = getattr(metrics, name)
            out[f"background_{name}_plus"] = measure(edits.plus, x, masks)
            out[f"background_{name}_minus"] = measure(edits.minus, x, masks)
            out[f"reconstruction_{name}"] = measure(edits.reconstruction, x)
        return out

    def summarize(self, scores, positive):
        parts = {}
        for name in self.names:
            plus, minus = scores[f"background_{name}_plus"], scores[f"background_{name}_minus"]
            parts.update({f"background_{name}": np.concatenate([plus, minus]),
                          f"background_{name}_plus": plus, f"background_{name}_minus": minus,
                          f"reconstruction_{name}": scores[f"reconstruction_{name}"]})
        return means(parts)


class DiscriminatorEvaluator(Evaluator):
    """The paper's fidelity score (§4.3, Table 2): sigmoid of the run's D on the flipping edits at
    the head of their new label (fidelity_score), and on x at its true head (real_fidelity_score,
    for scale)."""

    def score(self, model, edits):
        return {"fidelity": scoring.discriminator_scores(model, edits.flipped, ~edits.positive),
                "real_fidelity": scoring.discriminator_scores(model, edits.images, edits.positive)}

    def summarize(self, scores, positive):
        return means({"fidelity_score": scores["fidelity"], "real_fidelity_score": scores["real_fidelity"]})


class IdentityEvaluator(Evaluator):
    """Cosine of face embeddings of x and its flipping edit (identity_similarity) by `embedder`
    (`maae_tf.evaluation.identity.make_embedder`)."""

    def __init__(self, embedder):
        self.embedder = embedder

    def score(self, model, edits):
        return {"identity_similarity": face_identity.identity_similarity(self.embedder, edits.images, edits.flipped)}

    def summarize(self, scores, positive):
        return means({"identity_similarity": scores["identity_similarity"]})


class SweepEvaluator(Evaluator):
    """The δ sweep (paper Fig. 6) of the first `count` images: the judge's P(attribute) of G(x, δ)
    for each of `deltas`; sweep_monotonic_share (never drops by more than `tolerance`),
    sweep_direction_share (below 0.5 at the first δ, above at the last) and, beside the metrics,
    sweep_mean_probability (one value per δ) and sweep_probability_by_label (`metrics.column_spread`
    of the negatives and of the positives: eval/attribute_vs_delta.png)."""

    def __init__(self, judge_model, column: int, deltas, count: int, tolerance: float):
        self.judge_model, self.column = judge_model, int(column)
        self.deltas, self.count, self.tolerance = list(deltas), int(count), float(tolerance)

    def score(self, model, edits):
        wanted = self.images_left(edits.offset)
        if not wanted:
            return {}
        return {"sweep_probability": scoring.sweep(model, edits.images[:wanted], self.judge_model, self.column,
                                                   self.deltas)[1]}

    def images_left(self, offset: int) -> int:
        """How many images the sweep still wants from a batch starting at image `offset`."""
        return max(0, self.count - int(offset))

    def summarize(self, scores, positive):
        p = scores.get("sweep_probability", np.zeros((0, len(self.deltas))))
        out = {}
        out["sweep_monotonic_share"], out["sweep_monotonic_share_count"] = metrics.monotonic_share(p, self.tolerance)
        out.update(means({"sweep_direction_share": ((p[:, 0] < 0.5) & (p[:, -1] > 0.5)).astype(np.float64)}))
        out["sweep_mean_probability"] = [float(v) for v in p.mean(axis=0)] if len(p) else []
        label = np.asarray(positive, bool)[:len(p)]  # the sweep's images are the first ones
        out["sweep_probability_by_label"] = {"negatives": metrics.column_spread(p[~label]),
                                             "positives": metrics.column_spread(p[label])}
        return out


def part_name(evaluator: Evaluator) -> str:
    """The evaluator's name in timings: its class name without "Evaluator", lower case."""
    return type(evaluator).__name__.removesuffix("Evaluator").lower()


def run(model, batches, evaluators, delta_max: float, source: str = "the batches",
        on_batch=None) -> tuple[dict, np.ndarray]:
    """Scores every batch of `batches` (dicts with "image" [N, S, S, 3] in [-1, 1], "mask"
    [N, S, S, 1] and "positive" bool [N], as arrays) with every evaluator.

    Args:
      on_batch: called after each batch with (images scored so far, {"edits" or `part_name`:
        seconds spent so far}), e.g. to log progress.
    Returns:
      (the evaluators' summaries merged, the true labels bool [all N]).
    Raises ValueError ("<source> has no images") when `batches` holds no image.
    """
    scores = [{} for _ in evaluators]
    seconds = dict.fromkeys(["edits"] + [part_name(e) for e in evaluators], 0.0)
    truth = []
    offset = 0
    for batch in batches:
        t = time.perf_counter()
        edits = scoring.edit_batch(model, batch["image"], batch["mask"], batch["positive"], delta_max, offset)
        seconds["edits"] += time.perf_counter() - t
        for evaluator, kept in zip(evaluators, scores):
            t = time.perf_counter()
            for key, values in evaluator.score(model, edits).items():
                kept.setdefault(key, []).append(values)
            seconds[part_name(evaluator)] += time.perf_counter() - t
        truth.append(edits.positive)
        offset += len(edits.positive)
        if on_batch is not None:
            on_batch(offset, seconds)
    if not offset:
        raise ValueError(f"{source} has no images")
    positive = np.concatenate(truth)
    out = {}
    for evaluator, kept in zip(evaluators, scores):
        out.update(evaluator.summarize({k: np.concatenate(v) for k, v in kept.items()}, positive))
    return out, positive
