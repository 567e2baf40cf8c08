"""Per-image scores of one run's edits on a batch of test images (docs/method.md §7), shared by the
evaluation command (`maae_tf.evaluation.evaluate`) and the in-training evaluation (`callbacks.EditEvaluator`),
so both measure the same thing.

For images x with true labels y of the run's attribute, the edit that FLIPS the attribute is
G(x, +δ0) for negatives and G(x, -δ0) for positives (`flip_deltas`). `score_batch` returns arrays
with one value per image:

  edit_success            the independent classifier judges the flipped edit to carry the flipped
                          label (P > 0.5 for a negative made positive, P <= 0.5 for the reverse)
  keep_success            the edit TOWARDS the label x already has (G(x, -δ0) for a negative,
                          G(x, +δ0) for a positive) is judged to keep it
  reconstruction_kept     G(x, 0) is judged to keep x's label
                          (a generator that inverts the attribute whatever δ is scores 1 on
                          edit_success and 0 on these two: docs/method.md §4)
  real_positive           the classifier's judgement of x itself
  background_{psnr,ssim,l1}_{plus,minus}
                          x vs G(x, +δ0) and vs G(x, -δ0) over the background mask (every image,
                          both edits: the background must not move whichever way δ goes)
  reconstruction_{psnr,ssim,l1}
                          x vs G(x, 0) over the whole image
  fidelity                sigmoid of the run's discriminator on the flipped edit, at the head of
                          the label it should now carry (paper §4.3, Table 2)
  real_fidelity           the same score of x at its true head (what the discriminator gives
                          real photos, for scale)
  identity_similarity     cosine of face embeddings of x and of the flipped edit (only with an
                          `embedder`, maae_tf.evaluation.identity)
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from maae_tf.evaluation import classifier

from maae_tf.evaluation import metrics
from maae_tf.model.networks import NEGATIVE, POSITIVE


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


def score_batch(model, images, masks, positive, judge_model, column: int, delta_max: float,
                embedder=None, ssim: bool = True) -> dict[str, np.ndarray]:
    """The per-image scores of this module's docstring for one batch.

    images [N, S, S, 3] in [-1, 1]; masks [N, S, S, 1] (1 = background); positive bool [N] (true
    labels); judge_model / column: the attribute classifier and the run attribute's output column.
    """
    x = np.asarray(images, np.float32)
    positive = np.asarray(positive, bool)
    n = len(x)
    d0 = float(delta_max)
    deltas = np.concatenate([np.zeros(n), np.full(n, d0), np.full(n, -d0)]).astype(np.float32)
    recon, plus, minus = np.split(model.generate(tf.concat([x, x, x], 0), deltas).numpy(), 3)
    flipped = np.where(positive[:, None, None, None], minus, plus)
    kept = np.where(positive[:, None, None, None], plus, minus)

    p_real = classifier.probabilities(judge_model, x)[:, column]
    p_flip, p_kept, p_recon = (classifier.probabilities(judge_model, im)[:, column] for im in (flipped, kept, recon))
    masks = np.asarray(masks, np.float32)
    out = {
        "real_positive": p_real > 0.5,
        "edit_success": (p_flip > 0.5) == ~positive,
        "keep_success": (p_kept > 0.5) == positive,
        "reconstruction_kept": (p_recon > 0.5) == positive,
        "background_psnr_plus": metrics.psnr(plus, x, masks),
        "background_psnr_minus": metrics.psnr(minus, x, masks),
        "background_l1_plus": metrics.l1(plus, x, masks),
        "background_l1_minus": metrics.l1(minus, x, masks),
        "reconstruction_psnr": metrics.psnr(recon, x),
        "reconstruction_l1": metrics.l1(recon, x),
        "fidelity": discriminator_scores(model, flipped, ~positive),
        "real_fidelity": discriminator_scores(model, x, positive),
    }
    if ssim:
        out["background_ssim_plus"] = metrics.ssim(plus, x, masks)
        out["background_ssim_minus"] = metrics.ssim(minus, x, masks)
        out["reconstruction_ssim"] = metrics.ssim(recon, x)
    if embedder is not None:
        from maae_tf.evaluation import identity as face_identity

        out["identity_similarity"] = face_identity.identity_similarity(embedder, x, flipped)
    return out


def summarize(scores: dict, positive) -> dict:
    """Means of `score_batch`'s per-image scores (concatenated over batches) under the evaluation's
    metric names, each with `<name>_count`, the images (or (image, edit) pairs) it averages:
    attribute_accuracy (_plus: negatives, _minus: positives), attribute_keep_accuracy,
    reconstruction_attribute_accuracy, background_<m> (both edits; _plus, _minus) and
    reconstruction_<m> for every metric m scored, fidelity_score, real_fidelity_score and, when
    scored, identity_similarity. Non-finite values (an empty mask) are left out of the means."""
    positive = np.asarray(positive, bool)
    ok = np.asarray(scores["edit_success"], np.float64)
    parts = {"attribute_accuracy_plus": ok[~positive], "attribute_accuracy_minus": ok[positive],
             "attribute_accuracy": ok,
             "attribute_keep_accuracy": np.asarray(scores["keep_success"], np.float64),
             "reconstruction_attribute_accuracy": np.asarray(scores["reconstruction_kept"], np.float64),
             "fidelity_score": scores["fidelity"], "real_fidelity_score": scores["real_fidelity"]}
    for name in ("psnr", "ssim", "l1"):
        if f"background_{name}_plus" in scores:
            plus, minus = scores[f"background_{name}_plus"], scores[f"background_{name}_minus"]
            parts.update({f"background_{name}": np.concatenate([plus, minus]),
                          f"background_{name}_plus": plus, f"background_{name}_minus": minus,
                          f"reconstruction_{name}": scores[f"reconstruction_{name}"]})
    if "identity_similarity" in scores:
        parts["identity_similarity"] = scores["identity_similarity"]
    out = {}
    for key, values in parts.items():
        out[key], out[key + "_count"] = metrics.mean_finite(values)
    return out


def sweep(model, images, judge_model, column: int, deltas) -> tuple[list[np.ndarray], np.ndarray]:
    """The δ sweep of paper Fig. 6: G(x, δ) for every δ in `deltas` (a list of [N, S, S, 3]) and the
    classifier's P(attribute) of each, [N, len(deltas)] (the attribute should grow steadily with δ)."""
    x = np.asarray(images, np.float32)
    edits = [model.generate(x, float(d)).numpy() for d in deltas]
    probs = [classifier.probabilities(judge_model, e)[:, column] for e in edits]
    return edits, np.stack(probs, axis=1).astype(np.float64)
