"""Evaluates a trained M-AAE run on the TEST split of its dataset (DESIGN.md §7).

    python -m maae_tf.evaluate --workdir=runs/mouth_open [--num_images=500] [--seed=0]

Everything comes from the run's own config.json (data_dir, attribute, image size, crop, δ0 =
delta_max, eval.num_images, eval.classifier_steps, eval.classifier_batch); only the number of test
images and the classifier's seed can be overridden. Writes, under WORKDIR/eval/:

  metrics.json   the numbers below, each with the count of images it averages (atomic write)
  examples.png   rows = test images; columns input | recon | +δ0 | -δ0 | δ sweep -δ0 ... +δ0
  report.md      the metrics as a markdown table
  classifier/    the independent attribute classifier (maae_tf.classifier), trained once, reused

Metrics (x = the first N test images in the order of the attribute file, N = --num_images or
config.eval.num_images, fewer if the split is smaller):

  classifier_accuracy        the classifier's accuracy on all REAL test images of the dataset
  attribute_accuracy_plus    share of test NEGATIVES judged positive after G(x, +δ0)
  attribute_accuracy_minus   share of test POSITIVES judged negative after G(x, -δ0)
  attribute_accuracy         both together (over negatives + positives)
  background_psnr            PSNR (dB) between x and G(x, +δ0) and between x and G(x, -δ0), MSE
                             over the background mask only; mean of per-image PSNR over every
                             (image, edit) pair with a non-empty mask (_plus / _minus: one edit)
  background_l1              mean |x - G(x, ±δ0)| on the background, images in [0, 1]
  reconstruction_psnr        PSNR (dB) of G(x, 0) against x over the whole image

PSNR conventions (peak 1 on [0, 1] images, 100 dB cap for identical images): `maae_tf.metrics`.
Deterministic for a checkpoint and seed (op determinism is switched on by the command line).
A workdir without config.json or checkpoint, or a missing dataset, exits with status 2.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from maae_tf import attributes, classifier, metrics, visualize
from maae_tf.data import celeba
from maae_tf.files import write_text_atomic

EVAL_DIR = "eval"
BATCH = 32

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command line's flags (at `run()`, not at import, so that importing this module
    next to maae_tf.train, which also has --workdir, does not clash; a flag already defined by
    another module is shared)."""
    specs = (
        (flags.DEFINE_string, "workdir", None, "Training run folder (holds config.json and checkpoints/)."),
        (flags.DEFINE_integer, "num_images", None, "Test images to evaluate; default config.eval.num_images."),
        (flags.DEFINE_integer, "seed", None, "Seed of the attribute classifier's training; default config.seed."),
        (flags.DEFINE_integer, "num_examples", 8, "Rows of examples.png."),
    )
    for define, name, default, help_text in specs:
        if name not in FLAGS:
            define(name, default, help_text)


def _finite_or_none(v):
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_or_none(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    return v


def write_json(path: str, obj) -> None:
    """Writes `obj` as JSON atomically (NaN / inf become null)."""
    write_text_atomic(path, json.dumps(_finite_or_none(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def _fmt(v, digits=4) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    return str(v)


REPORT_ROWS = (
    ("classifier_accuracy", "classifier accuracy on real test images"),
    ("attribute_accuracy_plus", "attribute accuracy, negatives + δ0 judged positive"),
    ("attribute_accuracy_minus", "attribute accuracy, positives − δ0 judged negative"),
    ("attribute_accuracy", "attribute accuracy, both edits"),
    ("background_psnr", "background PSNR (dB), x vs G(x, ±δ0)"),
    ("background_psnr_plus", "background PSNR (dB), x vs G(x, +δ0)"),
    ("background_psnr_minus", "background PSNR (dB), x vs G(x, −δ0)"),
    ("background_l1", "background L1 ([0, 1] scale), x vs G(x, ±δ0)"),
    ("reconstruction_psnr", "reconstruction PSNR (dB), x vs G(x, 0)"),
    ("reconstruction_l1", "reconstruction L1 ([0, 1] scale), x vs G(x, 0)"),
)


def report_markdown(m: dict) -> str:
    lines = [f"# Evaluation of {m['workdir']}", "",
             f"Attribute **{m['attr']}**, checkpoint step {m['step']}, δ0 = {m['delta']:g}, "
             f"{m['num_images']} test images of `{m['data_dir']}` ({m['num_negatives']} negatives, "
             f"{m['num_positives']} positives), classifier seed {m['seed']}.", "",
             "| metric | value | images |", "|---|---|---|"]
    for key, title in REPORT_ROWS:
        lines.append(f"| {title} | {_fmt(m.get(key))} | {m.get(key + '_count', '')} |")
    lines += ["", f"PSNR: {m['psnr_averaging']}.", "",
              "![examples](examples.png)", "",
              "Columns of examples.png: " + " | ".join(m["examples_columns"]) + ".", ""]
    return "\n".join(lines)


def evaluate(workdir: str, num_images: int | None = None, seed: int | None = None,
             num_examples: int = 8, sweep: int = 5) -> dict:
    """Evaluates the latest checkpoint of `workdir`; writes WORKDIR/eval/{metrics.json, examples.png,
    report.md} and returns the metrics. Raises FileNotFoundError for a workdir without config or
    checkpoint and for a missing dataset."""
    from maae_tf.maae import load_from_workdir

    t0 = time.perf_counter()
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    model, config, step = load_from_workdir(workdir)
    celeba.check_layout(config.data_dir)
    attr = attributes.resolve(config.attr)
    column = attributes.index(attr)
    d0 = float(config.delta_max)
    n_want = int(config.eval.num_images if num_images is None else num_images)
    if n_want < 1:
        raise ValueError(f"num_images must be positive, got {n_want}")
    seed = int(config.seed if seed is None else seed)
    out_dir = os.path.join(workdir, EVAL_DIR)
    os.makedirs(out_dir, exist_ok=True)

    clf, clf_info = classifier.load_or_train(config, [attr], os.path.join(out_dir, "classifier"), seed=seed)
    clf_details = clf_info["test_details"][attr]

    @tf.function(reduce_retracing=True)
    def edits(x):
        b = tf.shape(x)[0]
        deltas = tf.concat([tf.zeros([b]), tf.fill([b], d0), tf.fill([b], -d0)], 0)
        return tf.split(model.generate(tf.concat([x, x, x], 0), deltas), 3)

    rec_psnr, rec_l1, bg_psnr_p, bg_psnr_m, bg_l1_p, bg_l1_m = ([] for _ in range(6))
    truth, real_pos, plus_pos, minus_pos = [], [], [], []
    examples = []
    for batch in celeba.images_dataset(config, "test", limit=n_want, batch_size=BATCH):
        x, mask = batch["image"], batch["mask"].numpy()
        recon, plus, minus = (t.numpy() for t in edits(x))
        x = x.numpy()
        truth.append(batch["labels"].numpy()[:, column] > 0.5)
        real_pos.append(classifier.judge(clf, x))
        plus_pos.append(classifier.judge(clf, plus))
        minus_pos.append(classifier.judge(clf, minus))
        rec_psnr.append(metrics.psnr(recon, x))
        rec_l1.append(metrics.l1(recon, x))
        bg_psnr_p.append(metrics.psnr(plus, x, mask))
        bg_psnr_m.append(metrics.psnr(minus, x, mask))
        bg_l1_p.append(metrics.l1(plus, x, mask))
        bg_l1_m.append(metrics.l1(minus, x, mask))
        if sum(len(e) for e in examples) < num_examples:
            examples.append(x[:num_examples - sum(len(e) for e in examples)])
    if not truth:
        raise ValueError(f"the test split of {config.data_dir!r} has no images")
    cat = np.concatenate
    truth, real_pos, plus_pos, minus_pos = cat(truth), cat(real_pos), cat(plus_pos), cat(minus_pos)
    n = int(truth.size)

    m = {"workdir": os.path.abspath(workdir), "step": int(step), "attr": attr, "delta": d0, "seed": seed,
         "split": "test", "data_dir": str(config.data_dir), "image_size": int(config.image_size),
         "num_images": n, "num_positives": int(truth.sum()), "num_negatives": int((~truth).sum())}

    m["classifier_accuracy"] = clf_details["accuracy"]
    m["classifier_accuracy_count"] = clf_details["num_images"]
    m["classifier_accuracy_positives"] = clf_details["accuracy_positives"]
    m["classifier_accuracy_positives_count"] = clf_details["num_positives"]
    m["classifier_accuracy_negatives"] = clf_details["accuracy_negatives"]
    m["classifier_accuracy_negatives_count"] = clf_details["num_negatives"]
    m["classifier_accuracy_eval_images"], m["classifier_accuracy_eval_images_count"] = (
        float(np.mean(real_pos == truth)), n)
    m["classifier"] = {k: clf_info.get(k) for k in ("steps", "batch", "seed", "reused", "train_seconds")}
    m["classifier"]["path"] = os.path.join(os.path.abspath(out_dir), "classifier", classifier.WEIGHTS_FILE)

    plus_ok = plus_pos[~truth]        # negatives + δ0, judged positive
    minus_ok = ~minus_pos[truth]      # positives - δ0, judged negative
    m["attribute_accuracy_plus"], m["attribute_accuracy_plus_count"] = metrics.flip_rate(plus_pos[~truth], True)
    m["attribute_accuracy_minus"], m["attribute_accuracy_minus_count"] = metrics.flip_rate(minus_pos[truth], False)
    m["attribute_accuracy"], m["attribute_accuracy_count"] = metrics.mean_finite(
        cat([plus_ok, minus_ok]).astype(np.float64))

    bg_p, bg_m = cat(bg_psnr_p), cat(bg_psnr_m)
    m["background_psnr"], m["background_psnr_count"] = metrics.mean_finite(cat([bg_p, bg_m]))
    m["background_psnr_plus"], m["background_psnr_plus_count"] = metrics.mean_finite(bg_p)
    m["background_psnr_minus"], m["background_psnr_minus_count"] = metrics.mean_finite(bg_m)
    m["background_l1"], m["background_l1_count"] = metrics.mean_finite(cat(bg_l1_p + bg_l1_m))
    m["background_l1_plus"], m["background_l1_plus_count"] = metrics.mean_finite(cat(bg_l1_p))
    m["background_l1_minus"], m["background_l1_minus_count"] = metrics.mean_finite(cat(bg_l1_m))
    m["background_count_note"] = ("background counts are (image, edit) pairs: each image with a "
                                  "non-empty background mask counts once per edit (+δ0, -δ0)")
    m["reconstruction_psnr"], m["reconstruction_psnr_count"] = metrics.mean_finite(cat(rec_psnr))
    m["reconstruction_l1"], m["reconstruction_l1_count"] = metrics.mean_finite(cat(rec_l1))
    m["psnr_averaging"] = metrics.PSNR_AVERAGING
    m["psnr_cap_db"] = metrics.PSNR_CAP_DB
    m["l1_scale"] = "images mapped to [0, 1]; mean over pixels (and channels) of each image, then over images"
    if m["background_psnr_count"] == 0:
        logging.warning("no background masks in %s: background metrics are null",
                        os.path.join(config.data_dir, celeba.MASK_DIR))

    ex = cat(examples)
    titles, cols = visualize.edit_columns(model, ex, d0, sweep=sweep)
    visualize.write_png(os.path.join(out_dir, "examples.png"), visualize.grid(cols),
                        scale=max(1, 128 // int(config.image_size)))
    m["examples_columns"] = titles
    m["examples_rows"] = int(len(ex))
    m["seconds"] = round(time.perf_counter() - t0, 2)

    write_json(os.path.join(out_dir, "metrics.json"), m)
    write_text_atomic(os.path.join(out_dir, "report.md"), report_markdown(_finite_or_none(m)))
    return _finite_or_none(m)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if not FLAGS.workdir:
        print("error: --workdir is required (a training run folder with config.json and checkpoints/)",
              file=sys.stderr)
        sys.exit(2)
    # same numbers for the same checkpoint and seed, also on GPUs
    tf.config.experimental.enable_op_determinism()
    try:
        m = evaluate(FLAGS.workdir, FLAGS.num_images, FLAGS.seed, FLAGS.num_examples)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    width = max(len(k) for k, _ in REPORT_ROWS)
    print(f"{m['attr']} at step {m['step']}, {m['num_images']} test images "
          f"({m['num_negatives']} negatives, {m['num_positives']} positives), δ0 = {m['delta']:g}")
    for key, _ in REPORT_ROWS:
        print(f"  {key:<{width}}  {_fmt(m.get(key)):>8}   (n = {m.get(key + '_count')})")
    print(f"wrote {os.path.join(FLAGS.workdir, EVAL_DIR)}/metrics.json, examples.png, report.md "
          f"in {m['seconds']:.1f} s")


def run():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run()
