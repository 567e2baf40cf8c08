"""Why an edit does or does not take: five measurements of a trained run on its test images.

    python -m maae_tf.diagnose --workdir=runs/mouth_open64 [--num_images=64]

1. **Gradient shares**: the norm of each weighted term of G's objective (α·∇L over the encoder and
   decoder weights, `MAAE.generator_terms`) on balanced pairs of test images (32 at most), and the
   cosine of the adversarial terms' gradient (GAN, and the attribute term and the GAN term on
   G(x, 0) where loss.alpha_cls / loss.alpha_gan_reconstruction > 0) with the sum of the others:
   what is left of the push towards the attribute once reconstruction, cycle and mask have had
   their say.
2. **D's heads**: sigmoid of D's NEGATIVE and POSITIVE logits on real negatives, real positives and
   the edits, and the ROC AUC with which each head tells real positives from real negatives (0.5:
   the head says nothing about the attribute, only real against fake).
3. **Where the edit acts**: mean |G(x, +δ0) - G(x, 0)| (images in [-1, 1]) per eighth of the image
   rows, and the share of that change that falls on the face (1 - background mask) and in the
   mouth box (rows 5/8-7/8, the middle half of the columns of the 170x170 crop).
4. **The judge's ceiling**: the share of the photos the dataset's attribute classifier
   (`classifier.for_dataset`, the evaluation's judge) reads right, and the share of G(x, 0) it
   judges to keep x's label, for positives and negatives separately; and where G(x, 0) loses the
   label: the same share with the photo's mouth box pasted into G(x, 0), and for the photo with
   G(x, 0)'s mouth box pasted in.
5. **Background per δ**: background PSNR of G(x, 0), G(x, +δ0) and G(x, -δ0) against x, each
   apart (what the reconstruction already loses, and what each edit adds).

Prints the five tables and writes WORKDIR/eval/diagnose.json. The evaluation
(`maae_tf.evaluation.evaluate`) says whether the edit takes; this says where the step's forces go.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import tensorflow as tf

from maae_tf import attributes
from maae_tf.config import load_workdir_config
from maae_tf.data import pipeline
from maae_tf.evaluation import classifier
from maae_tf.evaluation import evaluators
from maae_tf.evaluation import metrics
from maae_tf.evaluation import scoring
from maae_tf.files import write_text_atomic
from maae_tf.model import losses, precision
from maae_tf.model.maae import load_from_workdir
from maae_tf.model.networks import NEGATIVE, POSITIVE

ADVERSARIAL = ("gan", "cls", "gan_reconstruction", "cls_reconstruction")
# the gradient table's pairs at most: its tape holds every image of G's step for each (ten per pair)
GRADIENT_PAIRS = 32


def roc_auc(scores_positive, scores_negative) -> float:
    """P(score of a random positive > score of a random negative), ties counting half."""
    p = np.asarray(scores_positive, np.float64)[:, None]
    n = np.asarray(scores_negative, np.float64)[None, :]
    return float(np.mean((p > n) + 0.5 * (p == n)))


def gradient_shares(model, x1, x2, m1, m2) -> dict:
    """{term: norm of α·∇term over G's weights} plus the adversarial-vs-rest cosine."""
    variables = model.generator_variables
    with tf.GradientTape(persistent=True) as tape:
        terms, _ = model.generator_terms(x1, x2, m1, m2)
    flat = {}
    for name, weight in losses.generator_weights(model.spec.losses).items():
        if name in terms:
            grads = tape.gradient(terms[name], variables, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            flat[name] = weight * tf.concat([tf.reshape(tf.cast(g, tf.float32), [-1]) for g in grads], 0).numpy()
    del tape
    out = {"norm": {name: float(np.linalg.norm(g)) for name, g in flat.items()}}
    adversarial = sum(g for name, g in flat.items() if name in ADVERSARIAL)
    rest = sum(g for name, g in flat.items() if name not in ADVERSARIAL)
    denom = float(np.linalg.norm(adversarial) * np.linalg.norm(rest))
    out["adversarial_vs_rest_cosine"] = float(np.dot(adversarial, rest) / denom) if denom else None
    return out


def generate(model, images, delta: float) -> np.ndarray:
    """G(images, δ) generated evaluators.BATCH images at a time."""
    return np.concatenate([model.generate(images[i:i + evaluators.BATCH], delta).numpy()
                           for i in range(0, len(images), evaluators.BATCH)])


def head_scores(model, images) -> np.ndarray:
    logits = model.discriminator(tf.convert_to_tensor(images, tf.float32), training=False)
    return tf.sigmoid(tf.cast(logits[:, :2], tf.float32)).numpy()


def heads(model, negatives, positives, delta_max: float) -> dict:
    """Mean sigmoid of each head on reals and edits; each head's AUC between the real classes."""
    groups = {"real negatives": negatives, "real positives": positives,
              "negatives +δ0": generate(model, negatives, delta_max),
              "positives -δ0": generate(model, positives, -delta_max)}
    scores = {name: head_scores(model, x) for name, x in groups.items()}
    table = {name: {"NEGATIVE": float(s[:, NEGATIVE].mean()), "POSITIVE": float(s[:, POSITIVE].mean())}
             for name, s in scores.items()}
    auc = {"POSITIVE": roc_auc(scores["real positives"][:, POSITIVE], scores["real negatives"][:, POSITIVE]),
           "NEGATIVE": roc_auc(scores["real negatives"][:, NEGATIVE], scores["real positives"][:, NEGATIVE])}
    return {"mean_sigmoid": table, "auc_real_classes": auc}


def mouth_box(size: int) -> np.ndarray:
    """[size, size] 1 in the mouth box of an aligned crop (rows 5/8-7/8, the middle half of the
    columns), 0 elsewhere."""
    box = np.zeros((size, size), np.float32)
    box[5 * size // 8:7 * size // 8, size // 4:3 * size // 4] = 1.0
    return box


def edit_locality(model, images, masks, delta_max: float) -> dict:
    """Where G(x, +δ0) differs from G(x, 0): per row eighth, on the face, in the mouth box."""
    change = np.abs(generate(model, images, delta_max) - generate(model, images, 0.0)).mean(-1)
    s = change.shape[1]
    eighths = [float(change[:, k * s // 8:(k + 1) * s // 8].mean()) for k in range(8)]
    face = 1.0 - np.asarray(masks, np.float32)[..., 0]
    mouth = np.broadcast_to(mouth_box(s), change.shape)
    total = float(change.sum())
    return {"mean_change": float(change.mean()), "per_row_eighth": eighths,
            "share_on_face": float((change * face).sum() / total) if total else None,
            "face_area": float(face.mean()),
            "share_in_mouth_box": float((change * mouth).sum() / total) if total else None,
            "mouth_box_area": float(mouth.mean())}


def judge_ceiling(edits: scoring.Edits, judge_model, column: int) -> dict:
    """Per class (positives, negatives): how many images, the share of the photos the judge reads
    right, the share of G(x, 0) it judges to keep the label, and that share for G(x, 0) with the
    photo's mouth box and for the photo with G(x, 0)'s (None for a class with no image)."""
    judge = evaluators.EditEvaluator(judge_model, column)
    m = judge.summarize(judge.score(None, edits), edits.positive)  # the evaluation's per-class figures
    box = mouth_box(edits.images.shape[1])[None, :, :, None]
    swapped = {"kept_with_the_photos_mouth": edits.reconstruction * (1 - box) + edits.images * box,
               "photo_with_the_reconstructions_mouth": edits.images * (1 - box) + edits.reconstruction * box}
    kept = {name: classifier.judge(judge_model, images, column) == edits.positive for name, images in swapped.items()}
    return {name: {"images": int(chosen.sum()),
                   "judge_on_photos": m[f"classifier_accuracy_eval_{name}"],
                   "kept_by_reconstruction": m[f"reconstruction_attribute_accuracy_{name}"],
                   **{what: float(right[chosen].mean()) if chosen.any() else None for what, right in kept.items()}}
            for name, chosen in (("positives", edits.positive), ("negatives", ~edits.positive))}


def background_by_delta(edits: scoring.Edits) -> dict:
    """{δ: (mean background PSNR of G(x, δ) against x, images)} for δ = 0, +δ0 and -δ0."""
    out = {}
    for name, edited in (("0", edits.reconstruction), ("+δ0", edits.plus), ("-δ0", edits.minus)):
        out[name] = metrics.mean_finite(metrics.psnr(edited, edits.images, edits.masks))
    return out


def diagnose(workdir: str, num_images: int = 64) -> dict:
    """The five measurements of this module's docstring on the first `num_images` test images."""
    with precision.policy_scope("float32"):
        # the live weights (not their moving average): the gradients measured are those training takes
        model, cfg, step = load_from_workdir(workdir, with_identity=cfg_has_local_identity(workdir), average=False)
        attr = attributes.resolve(cfg.attr)
        batch = next(iter(pipeline.images_dataset(cfg, split="test", limit=num_images, batch_size=num_images)))
        positive = batch["labels"].numpy()[:, attributes.index(attr)] > 0.5
        images, masks = batch["image"].numpy(), batch["mask"].numpy()
        negatives, positives = images[~positive], images[positive]
        n = min(len(negatives), len(positives))
        if n == 0:
            raise ValueError(f"the first {num_images} test images of {cfg.data_dir} hold only one class of {attr}")
        n = min(n, GRADIENT_PAIRS)
        pair = [tf.constant(a[:n]) for a in (negatives, positives, masks[~positive], masks[positive])]
        judge_model, info = classifier.for_dataset(cfg, [attr])
        parts = [scoring.edit_batch(model, *(a[i:i + evaluators.BATCH] for a in (images, masks, positive)),
                                    cfg.delta_max) for i in range(0, len(images), evaluators.BATCH)]
        edits = scoring.Edits(*(np.concatenate([getattr(e, f) for e in parts])
                                for f in ("images", "masks", "positive", "reconstruction", "plus", "minus")))
        return {"workdir": workdir, "step": step, "attribute": attr, "images": len(images), "pairs": n,
                "gradients": gradient_shares(model, *pair),
                "heads": heads(model, negatives, positives, cfg.delta_max),
                "locality": edit_locality(model, images, masks, cfg.delta_max),
                "judge": judge_ceiling(edits, judge_model, classifier.column(info, attr)),
                "background_psnr_by_delta": background_by_delta(edits)}


def cfg_has_local_identity(workdir: str) -> bool:
    """F_ID is rebuilt for the gradient table only where it needs no download."""
    return load_workdir_config(workdir).identity.source in ("random", "h5")


def report(d: dict) -> str:
    g, h, loc = d["gradients"], d["heads"], d["locality"]
    total = sum(g["norm"].values()) or 1.0
    lines = [f"{d['workdir']} at step {d['step']}: {d['attribute']}, {d['images']} test images "
             f"(the gradients: {d['pairs']} pairs of them)",
             "", "1. gradient of each weighted term of G's objective (norm over G's weights)"]
    lines += [f"   {name:<6} {norm:10.4g}  ({100 * norm / total:5.1f} % of the sum of norms)"
              for name, norm in sorted(g["norm"].items(), key=lambda kv: -kv[1])]
    cos = g["adversarial_vs_rest_cosine"]
    lines.append(f"   cosine(adversarial terms, the others) = {'n/a' if cos is None else f'{cos:+.3f}'}")
    lines += ["", "2. D's heads: mean sigmoid                NEGATIVE   POSITIVE"]
    lines += [f"   {name:<38} {v['NEGATIVE']:8.3f}   {v['POSITIVE']:8.3f}" for name, v in h["mean_sigmoid"].items()]
    lines.append(f"   AUC real positives vs real negatives: POSITIVE head {h['auc_real_classes']['POSITIVE']:.3f}, "
                 f"NEGATIVE head {h['auc_real_classes']['NEGATIVE']:.3f} (0.5 = blind to the attribute)")
    lines += ["", f"3. |G(x, +δ0) - G(x, 0)|: mean {loc['mean_change']:.4f}; per row eighth, top to bottom: "
              + " ".join(f"{v:.3f}" for v in loc["per_row_eighth"])]
    if loc["share_on_face"] is not None:
        lines.append(f"   share on the face {loc['share_on_face']:.3f} (face area {loc['face_area']:.3f}); "
                     f"in the mouth box {loc['share_in_mouth_box']:.3f} (box area {loc['mouth_box_area']:.3f})")
    return "\n".join(lines + judge_lines(d))


def judge_lines(d: dict) -> list[str]:
    """Tables 4 and 5 of `report`: the judge's ceiling, the background per δ."""
    lines = ["", "4. the judge               images   photos read right   G(x, 0) keeps the label   "
                 "... with the photo's mouth box   the photo with G(x, 0)'s mouth box"]
    lines += [f"   {name:<22} {v['images']:6d}   {_share(v['judge_on_photos']):>17}   "
              f"{_share(v['kept_by_reconstruction']):>23}   {_share(v['kept_with_the_photos_mouth']):>30}   "
              f"{_share(v['photo_with_the_reconstructions_mouth']):>34}" for name, v in d["judge"].items()]
    lines += ["", "5. background PSNR against x (dB)"]
    lines += [f"   G(x, {name}){' ' * (5 - len(name))} {_share(psnr, '.2f'):>8}  ({count} images)"
              for name, (psnr, count) in d["background_psnr_by_delta"].items()]
    return lines


def _share(value, spec: str = ".3f") -> str:
    return "n/a" if value is None else f"{value:{spec}}"


def diagnose_command(workdir: str, num_images: int) -> None:
    """`python -m maae_tf.diagnose`: prints the report and writes WORKDIR/eval/diagnose.json; a bad
    input ends in one `error:` line and exit 2."""
    try:
        d = diagnose(workdir, num_images)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    out = os.path.join(workdir, "eval")
    os.makedirs(out, exist_ok=True)
    write_text_atomic(os.path.join(out, "diagnose.json"), json.dumps(d, indent=2))
    print(report(d))
