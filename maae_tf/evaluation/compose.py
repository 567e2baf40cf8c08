"""Sequential multi-attribute edits of several runs (paper Table 2): `python -m maae_tf.evaluate
--compose=A,B,...` (docs/method.md §7)."""

from __future__ import annotations

import os
import time

import numpy as np

from maae_tf import attributes
from maae_tf.data import pipeline
from maae_tf.evaluation import classifier
from maae_tf.evaluation import metrics
from maae_tf.evaluation import scoring
from maae_tf.evaluation import visualize
from maae_tf.evaluation.evaluators import BATCH, means
from maae_tf.evaluation.report import finite_or_none, multi_attribute_markdown, write_json
from maae_tf.files import write_text_atomic
from maae_tf.model.editor import load_runs


def multi_attribute(workdirs, num_images: int | None = None, seed: int | None = None, out: str | None = None,
                    num_examples: int = 8, lip_geometry: bool | None = None) -> dict:
    """Sequential edits with the first k runs, k = 1 ... K (as the exported model composes them,
    `Editor.generate`, computed one link at a time): each run flips its attribute (+δ0 on a
    negative, -δ0 on a positive) on the previous run's output. Per k: the fidelity score (mean over the k runs of sigmoid D_j on
    the final image at the head of attribute j's new label), the share of images with all k
    attributes flipped, the mean per-attribute flip rate and the background PSNR of the final image.
    `lip_geometry`: whether the mouth's judge adds the lips' geometry (None: the first run's config).
    Writes OUT/multi_attribute.{json,md,png}."""
    t0 = time.perf_counter()
    for w in workdirs:
        if not os.path.isdir(w):
            raise FileNotFoundError(f"workdir {w!r} does not exist")
    models, configs, steps = load_runs(workdirs)
    config = configs[0]
    for w, c in zip(workdirs[1:], configs[1:]):
        if os.path.abspath(c.data_dir) != os.path.abspath(config.data_dir):
            raise ValueError(f"runs of different datasets cannot be scored together: {workdirs[0]} uses "
                             f"{config.data_dir}, {w} uses {c.data_dir}")
    pipeline.check_layout(config.data_dir)
    attrs = [attributes.resolve(c.attr) for c in configs]
    label_cols = [attributes.index(a) for a in attrs]
    n_want = int(config.eval.num_images if num_images is None else num_images)
    seed = int(config.seed if seed is None else seed)
    if lip_geometry is not None:
        config.eval.classifier_lip_geometry = bool(lip_geometry)
    judge, info = classifier.for_dataset(config, attrs, seed=seed)
    clf_cols = [classifier.column(info, a) for a in attrs]
    k_all = len(models)

    per_k = {k: {"all": [], "each": [], "fidelity": [], "bg": []} for k in range(1, k_all + 1)}
    examples = None
    for batch in pipeline.images_dataset(config, "test", limit=n_want, batch_size=BATCH):
        x = batch["image"].numpy()
        mask = batch["mask"].numpy()
        positive = batch["labels"].numpy()[:, label_cols] > 0.5                  # [N, K]
        deltas = np.stack([scoring.flip_deltas(positive[:, j], configs[j].delta_max) for j in range(k_all)], 1)
        row, y = [x], x
        for k in range(1, k_all + 1):
            # the k-th network edits the (k-1)-th's output: Editor.generate's chain, one link a step
            y = models[k - 1].generate(y, deltas[:, k - 1]).numpy()
            p = classifier.probabilities(judge, y)[:, clf_cols[:k]]
            flipped = (p > 0.5) == ~positive[:, :k]                               # [N, k]
            fid = np.mean([scoring.discriminator_scores(models[j], y, ~positive[:, j]) for j in range(k)], 0)
            per_k[k]["all"].append(flipped.all(axis=1))
            per_k[k]["each"].append(flipped.mean(axis=1))
            per_k[k]["fidelity"].append(fid)
            per_k[k]["bg"].append(metrics.psnr(y, x, mask))
            row.append(y)
        if examples is None:
            examples = [c[:num_examples] for c in row]
    if examples is None:
        raise ValueError(f"the test split of {config.data_dir!r} has no images")

    table = [{"num_attributes": k, "attributes": attrs[:k],
              **means({"fidelity_score": np.concatenate(per_k[k]["fidelity"]),
                       "attribute_accuracy_all": np.concatenate(per_k[k]["all"]).astype(np.float64),
                       "attribute_accuracy_per_attribute": np.concatenate(per_k[k]["each"]),
                       "background_psnr": np.concatenate(per_k[k]["bg"])})}
             for k in range(1, k_all + 1)]
    result = {"workdirs": [os.path.abspath(w) for w in workdirs], "attributes": attrs, "steps": [int(s) for s in steps],
              "data_dir": str(config.data_dir), "image_size": int(config.image_size), "seed": seed,
              "classifier_test_accuracy": {a: info["test_accuracy"][a] for a in attrs},
              "num_images": table[0]["fidelity_score_count"], "rows": table,
              "seconds": round(time.perf_counter() - t0, 2)}
    out = out or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "multi_attribute")
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "multi_attribute.json"), result)
    write_text_atomic(os.path.join(out, "multi_attribute.md"), multi_attribute_markdown(finite_or_none(result)))
    visualize.write_png(os.path.join(out, "multi_attribute.png"), visualize.grid(examples),
                        scale=max(1, 128 // int(config.image_size)))
    return finite_or_none(result)
