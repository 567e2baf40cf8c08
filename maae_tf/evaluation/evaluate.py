"""Evaluates trained M-AAE runs on the TEST split of their dataset (docs/method.md §7).

    python -m maae_tf.evaluate --workdir=runs/mouth_open [--num_images=500] [--seed=0]
    python -m maae_tf.evaluate --workdirs=runs/full,runs/entire,runs/no_id,runs/no_mask [--out=DIR]
    python -m maae_tf.evaluate --compose=runs/mouth_open,runs/blond_hair,runs/eyeglasses,runs/pale_skin

Everything comes from each run's own config.json (data_dir, attribute, image size, crop, δ0 =
delta_max, eval.*); only the number of test images, the classifier's seed and the identity network
can be overridden. One run (--workdir) writes, under WORKDIR/eval/:

  metrics.json   the numbers below, each with the count of images it averages (atomic write)
  report.md      the metrics as a markdown table, with the two pictures
  examples.png   rows = test images; columns input | recon | +δ0 | -δ0 | δ sweep -δ0 ... +δ0
  sweep.png      the δ sweep of paper Fig. 6, each tile labelled with the classifier's P(attribute)

Several runs (--workdirs) are each evaluated as above and compared in one markdown table
(paper Fig. 5 / Table 3 ablations: the rows say which config keys differ): OUT/comparison.md and
comparison.json. --compose evaluates sequential multi-attribute edits (paper Table 2) with
1, 2, ..., K of the given runs: OUT/multi_attribute.{md,json,png}.

Metrics of one run (x = the first N test images in the order of the attribute file, N =
--num_images or config.eval.num_images; the flipping edit is G(x, +δ0) for a negative and
G(x, -δ0) for a positive, maae_tf.evaluation.scoring):

  classifier_balanced_accuracy  the dataset classifier's balanced accuracy (mean of the accuracies
                             on positives and negatives) for the attribute on its REAL held-out
                             images (maae_tf.evaluation.classifier; trained once per dataset, cached; never on
                             the run's test images); classifier_accuracy: its plain accuracy there;
                             both again on the evaluated images (..._eval_images)
  attribute_accuracy_plus    share of test NEGATIVES judged positive after G(x, +δ0)
  attribute_accuracy_minus   share of test POSITIVES judged negative after G(x, -δ0)
  attribute_accuracy         both together (over negatives + positives)
  attribute_keep_accuracy    share of edits TOWARDS the label an image has (G(x, -δ0) of a negative,
                             G(x, +δ0) of a positive) judged to keep it
  reconstruction_attribute_accuracy
                             share of G(x, 0) judged to keep x's label (with the previous key: a
                             generator that inverts the attribute whatever δ is scores ~0 here)
  background_psnr / _ssim / _l1
                             x vs G(x, +δ0) and vs G(x, -δ0) over the background mask only, every
                             (image, edit) pair with a non-empty mask (_plus / _minus: one edit)
  reconstruction_psnr / _ssim / _l1
                             G(x, 0) against x over the whole image
  identity_similarity        cosine of face embeddings of x and its flipping edit by an independent
                             face-recognition network (identity_network names it: dlib's ResNet, or
                             the run's own F_ID as a labelled fallback; maae_tf.evaluation.identity)
  fidelity_score             mean sigmoid of the run's discriminator on the flipping edits, at the
                             head of the label they should carry (paper §4.3 / Table 2);
                             real_fidelity_score: the same on the real x, for scale
  sweep_monotonic_share      share of the first eval.sweep_images images whose P(attribute) never
                             drops (by more than eval.sweep_tolerance) along the δ sweep
  sweep_direction_share      share of those sweeps that cross the classifier's boundary the right
                             way: P(attribute) < 0.5 at -δ0 and > 0.5 at +δ0 (a flat sweep is
                             monotonic but not directed)
  num_images                 N; every metric also has `<name>_count`, the images it averages

PSNR / SSIM conventions (peak 1 on [0, 1] images, 100 dB cap; SSIM as tf.image.ssim):
`maae_tf.evaluation.metrics`. Deterministic for a checkpoint and seed (op determinism is switched on by the
command line). A workdir without config.json or checkpoint, or a missing dataset, exits with 2.
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

from maae_tf import attributes

from maae_tf.evaluation import classifier
from maae_tf.evaluation import classifier_training

from maae_tf.evaluation import metrics

from maae_tf.model import precision

from maae_tf.evaluation import scoring

from maae_tf.evaluation import visualize
from maae_tf.data import celeba
from maae_tf.files import write_text_atomic

EVAL_DIR = "eval"
BATCH = 32
VERSION = 3  # of the metrics (3: the judge's balanced accuracy): another version is never reused (--reuse)

FLAGS = flags.FLAGS


def define_flags() -> None:
    """Defines the command line's flags (at `run()`, not at import, so that importing this module
    next to maae_tf.training.loop, which also has --workdir, does not clash; a flag already defined by
    another module is shared)."""
    specs = (
        (flags.DEFINE_string, "workdir", None, "Training run folder (holds config.json and checkpoints/)."),
        (flags.DEFINE_list, "workdirs", None, "Several runs to evaluate and compare in one table (ablations)."),
        (flags.DEFINE_list, "compose", None, "Runs of different attributes: sequential multi-attribute edits "
                                             "with 1..K of them (paper Table 2)."),
        (flags.DEFINE_string, "out", None, "Folder of comparison.md / multi_attribute.md; default: beside "
                                           "the first run, <parent>/comparison or <parent>/multi_attribute."),
        (flags.DEFINE_integer, "num_images", None, "Test images to evaluate; default config.eval.num_images."),
        (flags.DEFINE_integer, "seed", None, "Seed of the attribute classifier's training; default config.seed."),
        (flags.DEFINE_integer, "num_examples", 8, "Rows of examples.png and sweep.png."),
        (flags.DEFINE_enum, "identity_network", None, ["auto", "dlib", "fid"],
         "Face-recognition network of identity_similarity; default config.eval.identity_network."),
        (flags.DEFINE_bool, "reuse", False, "--workdirs: reuse a run's eval/metrics.json when it is of the same "
                                            "checkpoint, image count, seed and identity network."),
    )
    for define, name, default, *rest in specs:
        if name not in FLAGS:
            if define is flags.DEFINE_enum:
                define(name, default, rest[0], rest[1])
            else:
                define(name, default, rest[0])


def _finite_or_none(v):
    if isinstance(v, dict):
        return {k: _finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite_or_none(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
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
    ("classifier_balanced_accuracy", "classifier balanced accuracy on its held-out real images"),
    ("classifier_accuracy", "classifier accuracy on its held-out real images"),
    ("classifier_balanced_accuracy_eval_images", "classifier balanced accuracy on the evaluated real images"),
    ("classifier_accuracy_eval_images", "classifier accuracy on the evaluated real images"),
    ("attribute_accuracy_plus", "attribute accuracy, negatives + δ0 judged positive"),
    ("attribute_accuracy_minus", "attribute accuracy, positives − δ0 judged negative"),
    ("attribute_accuracy", "attribute accuracy, both edits"),
    ("attribute_keep_accuracy", "label kept by the edit towards it (negatives − δ0, positives + δ0)"),
    ("reconstruction_attribute_accuracy", "label kept by G(x, 0)"),
    ("background_psnr", "background PSNR (dB), x vs G(x, ±δ0)"),
    ("background_ssim", "background SSIM, x vs G(x, ±δ0)"),
    ("background_l1", "background L1 ([0, 1] scale), x vs G(x, ±δ0)"),
    ("reconstruction_psnr", "reconstruction PSNR (dB), x vs G(x, 0)"),
    ("reconstruction_ssim", "reconstruction SSIM, x vs G(x, 0)"),
    ("reconstruction_l1", "reconstruction L1 ([0, 1] scale), x vs G(x, 0)"),
    ("identity_similarity", "identity similarity, cos(x, flipping edit)"),
    ("fidelity_score", "fidelity score, sigmoid D(flipping edit)"),
    ("real_fidelity_score", "fidelity score of the real images"),
    ("sweep_monotonic_share", "share of δ sweeps with P(attribute) monotonic"),
    ("sweep_direction_share", "share of δ sweeps from P < 0.5 at −δ0 to P > 0.5 at +δ0"),
)


def report_markdown(m: dict) -> str:
    lines = [f"# Evaluation of {m['workdir']}", "",
             f"Attribute **{m['attr']}**, checkpoint step {m['step']}, δ0 = {m['delta']:g}, "
             f"{m['num_images']} test images of `{m['data_dir']}` ({m['num_negatives']} negatives, "
             f"{m['num_positives']} positives), classifier seed {m['seed']}, {m['seconds']:.1f} s.", "",
             "| metric | value | images |", "|---|---|---|"]
    for key, title in REPORT_ROWS:
        lines.append(f"| {title} | {_fmt(m.get(key))} | {m.get(key + '_count', '')} |")
    lines += ["", f"Classifier: {m['classifier']['split_note']}.", "",
              f"Identity network: {m['identity_network']}.", "",
              f"PSNR: {m['psnr_averaging']}. Background counts: {m['background_count_note']}.", "",
              f"Sweep: δ = {', '.join(f'{d:+.2f}' for d in m['sweep_deltas'])}; mean P(attribute) "
              f"{', '.join(f'{p:.2f}' for p in m['sweep_mean_probability'])} "
              f"(tolerance {m['sweep_tolerance']:g}).", "",
              "![examples](examples.png)", "",
              "Columns of examples.png: " + " | ".join(m["examples_columns"]) + ".", "",
              "![δ sweep](sweep.png)", ""]
    return "\n".join(lines)


def _load(workdir: str):
    """The run's model in float32 (whatever policy it trained under), its config and step."""
    from maae_tf.model.maae import load_from_workdir

    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    with precision.policy_scope("float32"):
        return load_from_workdir(workdir)


def _mean(values, key: str, m: dict) -> None:
    m[key], m[key + "_count"] = metrics.mean_finite(values)


def _request(config, num_images, seed, identity_network) -> dict:
    """What an evaluation was asked for, with the config's defaults filled in."""
    return {"num_images": int(config.eval.num_images if num_images is None else num_images),
            "seed": int(config.seed if seed is None else seed),
            "identity_network": identity_network or config.eval.identity_network}


def reusable(workdir: str, num_images: int | None = None, seed: int | None = None,
             identity_network: str | None = None) -> dict | None:
    """WORKDIR/eval/metrics.json when it holds this metrics VERSION, of the run's latest checkpoint,
    for the same request (image count, seed, identity network); else None."""
    from maae_tf.config import load_workdir_config
    from maae_tf.model.maae import saved_checkpoints

    path = os.path.join(workdir, EVAL_DIR, "metrics.json")
    # the checkpoint the loader takes (its files, not the state file)
    latest = (saved_checkpoints(os.path.join(workdir, "checkpoints")) or [None])[-1]
    if not (os.path.isfile(path) and latest):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            m = json.load(f)
    except (OSError, ValueError):
        return None
    want = _request(load_workdir_config(workdir), num_images, seed, identity_network)
    same = m.get("version") == VERSION and m.get("request") == want and m.get("step") == int(latest.rsplit("-", 1)[1])
    return m if same else None


def evaluate(workdir: str, num_images: int | None = None, seed: int | None = None,
             num_examples: int = 8, identity_network: str | None = None) -> dict:
    """Evaluates the latest checkpoint of `workdir`; writes WORKDIR/eval/{metrics.json, report.md,
    examples.png, sweep.png} and returns the metrics. Raises FileNotFoundError for a workdir without
    config or checkpoint and for a missing dataset."""
    from maae_tf.evaluation import identity as face_identity

    t0 = time.perf_counter()
    model, config, step = _load(workdir)
    celeba.check_layout(config.data_dir)
    attr = attributes.resolve(config.attr)
    label_col = attributes.index(attr)
    d0 = float(config.delta_max)
    n_want = int(config.eval.num_images if num_images is None else num_images)
    if n_want < 1:
        raise ValueError(f"num_images must be positive, got {n_want}")
    seed = int(config.seed if seed is None else seed)
    out_dir = os.path.join(workdir, EVAL_DIR)
    os.makedirs(out_dir, exist_ok=True)

    judge, clf_info = classifier.for_dataset(config, [attr], seed=seed)
    clf_col = classifier.column(clf_info, attr)
    clf_details = clf_info["test_details"][attr]
    embedder = face_identity.make_embedder(identity_network or config.eval.identity_network, config)
    sweep_deltas = visualize.sweep_values(d0, int(config.eval.sweep_steps))
    n_sweep = int(config.eval.sweep_images)

    scores, truth, sweeps, examples = {}, [], [], []
    for batch in celeba.images_dataset(config, "test", limit=n_want, batch_size=BATCH):
        x = batch["image"].numpy()
        positive = batch["labels"].numpy()[:, label_col] > 0.5
        s = scoring.score_batch(model, x, batch["mask"].numpy(), positive, judge, clf_col, d0, embedder=embedder)
        for k, v in s.items():
            scores.setdefault(k, []).append(v)
        truth.append(positive)
        seen = sum(len(p) for p in sweeps)
        if seen < n_sweep:
            sweeps.append(scoring.sweep(model, x[:n_sweep - seen], judge, clf_col, sweep_deltas)[1])
        if sum(len(e) for e in examples) < num_examples:
            examples.append(x[:num_examples - sum(len(e) for e in examples)])
    if not truth:
        raise ValueError(f"the test split of {config.data_dir!r} has no images")
    scores = {k: np.concatenate(v) for k, v in scores.items()}
    truth = np.concatenate(truth)
    sweep_p = np.concatenate(sweeps) if sweeps else np.zeros((0, len(sweep_deltas)))
    n = int(truth.size)

    m = {"version": VERSION, "request": _request(config, num_images, seed, identity_network),
         "workdir": os.path.abspath(workdir), "step": int(step), "attr": attr, "delta": d0, "seed": seed,
         "split": "test", "data_dir": str(config.data_dir), "image_size": int(config.image_size),
         "num_images": n, "num_positives": int(truth.sum()), "num_negatives": int((~truth).sum())}

    m["classifier_balanced_accuracy"] = clf_details["balanced_accuracy"]
    m["classifier_balanced_accuracy_count"] = clf_details["num_images"]
    m["classifier_accuracy"] = clf_details["accuracy"]
    m["classifier_accuracy_count"] = clf_details["num_images"]
    m["classifier_accuracy_positives"] = clf_details["accuracy_positives"]
    m["classifier_accuracy_positives_count"] = clf_details["num_positives"]
    m["classifier_accuracy_negatives"] = clf_details["accuracy_negatives"]
    m["classifier_accuracy_negatives_count"] = clf_details["num_negatives"]
    m["classifier_accuracy_eval_images"] = float(np.mean(scores["real_positive"] == truth))
    m["classifier_accuracy_eval_images_count"] = n
    balanced = classifier_training.balanced_accuracy(scores["real_positive"][:, None], truth[:, None])[0]
    m["classifier_balanced_accuracy_eval_images"] = None if np.isnan(balanced) else float(balanced)
    m["classifier_balanced_accuracy_eval_images_count"] = n
    m["classifier"] = {k: clf_info.get(k) for k in ("steps", "batch", "seed", "reused", "train_seconds", "path",
                                                     "attrs", "mean_test_accuracy", "mean_test_balanced_accuracy",
                                                     "split_note")}

    m.update(scoring.summarize(scores, truth))
    m["background_count_note"] = ("background counts are (image, edit) pairs: each image with a "
                                  "non-empty background mask counts once per edit (+δ0, -δ0)")
    m["identity_network"] = embedder.name
    tolerance = float(config.eval.sweep_tolerance)
    m["sweep_monotonic_share"], m["sweep_monotonic_share_count"] = metrics.monotonic_share(sweep_p, tolerance)
    directed = (sweep_p[:, 0] < 0.5) & (sweep_p[:, -1] > 0.5)
    _mean(directed.astype(np.float64), "sweep_direction_share", m)
    m["sweep_deltas"] = [float(d) for d in sweep_deltas]
    m["sweep_mean_probability"] = [float(p) for p in sweep_p.mean(axis=0)] if len(sweep_p) else []
    m["sweep_tolerance"] = tolerance
    m["psnr_averaging"] = metrics.PSNR_AVERAGING
    m["psnr_cap_db"] = metrics.PSNR_CAP_DB
    m["ssim"] = "tf.image.ssim's: 11x11 Gaussian window, sigma 1.5, on [0, 1] images; masked = window centres on the mask"
    m["l1_scale"] = "images mapped to [0, 1]; mean over pixels (and channels) of each image, then over images"
    if m["background_psnr_count"] == 0:
        logging.warning("no background masks in %s: background metrics are null",
                        os.path.join(config.data_dir, celeba.MASK_DIR))

    ex = np.concatenate(examples)
    scale = max(1, 128 // int(config.image_size))
    titles, cols = visualize.edit_columns(model, ex, d0, sweep=5)
    visualize.write_png(os.path.join(out_dir, "examples.png"), visualize.grid(cols), scale=scale)
    strip, strip_p = scoring.sweep(model, ex, judge, clf_col, sweep_deltas)
    visualize.write_png(os.path.join(out_dir, "sweep.png"), visualize.sweep_strip(strip, strip_p, scale=scale))
    m["examples_columns"] = titles
    m["examples_rows"] = int(len(ex))
    m["seconds"] = round(time.perf_counter() - t0, 2)
    m["images_per_second"] = round(n / m["seconds"], 2)

    write_json(os.path.join(out_dir, "metrics.json"), m)
    write_text_atomic(os.path.join(out_dir, "report.md"), report_markdown(_finite_or_none(m)))
    return _finite_or_none(m)


# ----- several runs: the ablation table ------------------------------------------------------------

COMPARE_COLUMNS = (
    ("attribute_accuracy", "editing acc."), ("attribute_keep_accuracy", "keep acc."),
    ("reconstruction_attribute_accuracy", "recon keeps label"), ("background_psnr", "bg PSNR"), ("background_ssim", "bg SSIM"),
    ("background_l1", "bg L1"), ("reconstruction_psnr", "recon PSNR"), ("reconstruction_ssim", "recon SSIM"),
    ("identity_similarity", "identity"), ("fidelity_score", "fidelity"),
    ("sweep_monotonic_share", "monotonic sweeps"), ("sweep_direction_share", "directed sweeps"),
)
# bookkeeping keys that never make two runs different methods
_NOT_A_VARIANT = ("log_every", "image_every", "checkpoint_every", "keep_checkpoints", "eval", "strategy",
                  "jit_compile", "shuffle_buffer")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def config_differences(workdirs) -> list[str]:
    """For each run, the config keys (dotted) where it differs from the first run, as 'key=value'
    text ('reference' for the first run itself)."""
    from maae_tf.config import load_workdir_config

    flat = [_flat(load_workdir_config(w).to_dict()) for w in workdirs]
    out = []
    for i, f in enumerate(flat):
        if i == 0:
            out.append("reference")
            continue
        diff = [f"{k}={f.get(k)!r}" for k in sorted(set(f) | set(flat[0]))
                if k.split(".")[0] not in _NOT_A_VARIANT and f.get(k) != flat[0].get(k)]
        out.append(", ".join(diff) or "same config")
    return out


def compare_markdown(rows: list[dict], variants: list[str]) -> str:
    lines = ["# Comparison of runs", "",
             "Each run evaluated on its own test split with its latest checkpoint (`python -m maae_tf.evaluate`); "
             "the variant column lists the config keys that differ from the first run.", "",
             "| run | variant | step | images | " + " | ".join(t for _, t in COMPARE_COLUMNS) + " |",
             "|---|---|---|---|" + "---|" * len(COMPARE_COLUMNS)]
    for m, variant in zip(rows, variants):
        cells = [_fmt(m.get(k)) for k, _ in COMPARE_COLUMNS]
        lines.append(f"| {os.path.basename(m['workdir'])} | {variant} | {m['step']} | {m['num_images']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Identity networks: " + "; ".join(sorted({m["identity_network"] for m in rows})) + ".", "",
              "Counts: editing accuracy over all images (negatives +δ0, positives −δ0); background metrics over "
              "(image, edit) pairs, both edits; identity and fidelity over the flipping edits; monotonic sweeps "
              "over config.eval.sweep_images images.", ""]
    return "\n".join(lines)


def compare(workdirs, out: str | None = None, reuse: bool = False, **kwargs) -> tuple[str, str]:
    """Evaluates every run of `workdirs` (`evaluate`; with `reuse`, a run's `reusable` metrics.json
    stands), writes OUT/comparison.{md,json} and returns (the markdown table, OUT)."""
    if len(workdirs) < 1:
        raise ValueError("--workdirs names no run")
    request = {k: kwargs.get(k) for k in ("num_images", "seed", "identity_network")}
    rows = []
    for w in workdirs:
        m = reusable(w, **request) if reuse else None
        if m is not None:
            logging.info("reusing %s (step %d)", os.path.join(w, EVAL_DIR, "metrics.json"), m["step"])
        rows.append(m if m is not None else evaluate(w, **kwargs))
    variants = config_differences(workdirs)
    out = out or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "comparison")
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "comparison.json"),
               {"runs": [dict(m, variant=v) for m, v in zip(rows, variants)]})
    table = compare_markdown(rows, variants)
    write_text_atomic(os.path.join(out, "comparison.md"), table)
    return table, out


# ----- sequential multi-attribute edits: paper Table 2 ----------------------------------------------

def multi_attribute(workdirs, num_images: int | None = None, seed: int | None = None, out: str | None = None,
                    num_examples: int = 8) -> dict:
    """Sequential edits with the first k runs, k = 1 ... K (as the exported model composes them,
    `Editor.generate`, computed one link at a time): each run flips its attribute (+δ0 on a negative, -δ0 on a positive)
    on the previous run's output. Per k: the fidelity score (mean over the k runs of sigmoid D_j on
    the final image at the head of attribute j's new label), the share of images with all k
    attributes flipped, the mean per-attribute flip rate and the background PSNR of the final image.
    Writes OUT/multi_attribute.{json,md,png}."""
    from maae_tf.model.editor import load_runs

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
    celeba.check_layout(config.data_dir)
    attrs = [attributes.resolve(c.attr) for c in configs]
    label_cols = [attributes.index(a) for a in attrs]
    n_want = int(config.eval.num_images if num_images is None else num_images)
    seed = int(config.seed if seed is None else seed)
    judge, info = classifier.for_dataset(config, attrs, seed=seed)
    clf_cols = [classifier.column(info, a) for a in attrs]
    k_all = len(models)

    per_k = {k: {"all": [], "each": [], "fidelity": [], "bg": []} for k in range(1, k_all + 1)}
    examples = None
    for batch in celeba.images_dataset(config, "test", limit=n_want, batch_size=BATCH):
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

    table = []
    for k in range(1, k_all + 1):
        r = {"num_attributes": k, "attributes": attrs[:k]}
        _mean(np.concatenate(per_k[k]["fidelity"]), "fidelity_score", r)
        _mean(np.concatenate(per_k[k]["all"]).astype(np.float64), "attribute_accuracy_all", r)
        _mean(np.concatenate(per_k[k]["each"]), "attribute_accuracy_per_attribute", r)
        _mean(np.concatenate(per_k[k]["bg"]), "background_psnr", r)
        table.append(r)
    result = {"workdirs": [os.path.abspath(w) for w in workdirs], "attributes": attrs, "steps": [int(s) for s in steps],
              "data_dir": str(config.data_dir), "image_size": int(config.image_size), "seed": seed,
              "classifier_test_accuracy": {a: info["test_accuracy"][a] for a in attrs},
              "num_images": table[0]["fidelity_score_count"], "rows": table,
              "seconds": round(time.perf_counter() - t0, 2)}
    out = out or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "multi_attribute")
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "multi_attribute.json"), result)
    write_text_atomic(os.path.join(out, "multi_attribute.md"), multi_attribute_markdown(_finite_or_none(result)))
    visualize.write_png(os.path.join(out, "multi_attribute.png"), visualize.grid(examples),
                        scale=max(1, 128 // int(config.image_size)))
    return _finite_or_none(result)


def multi_attribute_markdown(r: dict) -> str:
    ks = [row["num_attributes"] for row in r["rows"]]
    head = "| Num of manipulated attributes | " + " | ".join(str(k) for k in ks) + " |"
    rows = [("M-AAE fidelity score (0 to 1)", "fidelity_score"),
            ("editing accuracy, all attributes flipped", "attribute_accuracy_all"),
            ("editing accuracy, per attribute", "attribute_accuracy_per_attribute"),
            ("background PSNR (dB)", "background_psnr")]
    lines = ["# Multi-attribute manipulation (paper Table 2 layout)", "",
             f"Sequential edits of {r['num_images']} test images of `{r['data_dir']}`: column k applies the "
             f"first k of {', '.join(r['attributes'])} in order, each flipping its attribute (+δ0 on a "
             "negative, −δ0 on a positive). Fidelity: mean over the k runs of sigmoid D_j(final image) at "
             "the head of attribute j's new label. Every cell averages all the images.", "",
             head, "|---|" + "---|" * len(ks)]
    for title, key in rows:
        lines.append(f"| {title} | " + " | ".join(_fmt(row.get(key)) for row in r["rows"]) + " |")
    lines += ["", "Classifier test accuracy: " + ", ".join(f"{a} {_fmt(v)}" for a, v in
                                                           r["classifier_test_accuracy"].items()) + ".", "",
              "![multi-attribute edits](multi_attribute.png)", "",
              "Columns: input, then after 1, 2, ... attributes.", ""]
    return "\n".join(lines)


# ----- command line ---------------------------------------------------------------------------------

def _print_run(m: dict) -> None:
    width = max(len(k) for k, _ in REPORT_ROWS)
    print(f"{m['attr']} at step {m['step']}, {m['num_images']} test images "
          f"({m['num_negatives']} negatives, {m['num_positives']} positives), δ0 = {m['delta']:g}, "
          f"identity network: {m['identity_network']}")
    for key, _ in REPORT_ROWS:
        print(f"  {key:<{width}}  {_fmt(m.get(key)):>8}   (n = {m.get(key + '_count')})")
    print(f"wrote {os.path.join(m['workdir'], EVAL_DIR)}/metrics.json, report.md, examples.png, sweep.png "
          f"in {m['seconds']:.1f} s ({m['images_per_second']:g} images/s)")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    modes = [bool(FLAGS.workdir), bool(FLAGS.workdirs), bool(FLAGS.compose)]
    if sum(modes) != 1:
        print("error: give exactly one of --workdir (one run), --workdirs (compare runs) or --compose "
              "(multi-attribute edits)", file=sys.stderr)
        sys.exit(2)
    # same numbers for the same checkpoint and seed, also on GPUs
    tf.config.experimental.enable_op_determinism()
    kwargs = dict(num_images=FLAGS.num_images, seed=FLAGS.seed, num_examples=FLAGS.num_examples)
    try:
        if FLAGS.workdir:
            _print_run(evaluate(FLAGS.workdir, identity_network=FLAGS.identity_network, **kwargs))
        elif FLAGS.workdirs:
            t0 = time.perf_counter()
            table, out = compare(FLAGS.workdirs, FLAGS.out, reuse=FLAGS.reuse,
                                 identity_network=FLAGS.identity_network, **kwargs)
            print(table)
            print(f"wrote {out}/comparison.md, comparison.json in {time.perf_counter() - t0:.1f} s")
        else:
            r = multi_attribute(FLAGS.compose, out=FLAGS.out, **kwargs)
            print(multi_attribute_markdown(r))
            print(f"{r['num_images']} images in {r['seconds']:.1f} s")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def run():
    define_flags()
    app.run(main)
