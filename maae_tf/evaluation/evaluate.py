"""Evaluates trained M-AAE runs on the TEST split of their dataset: one run (--workdir), an
ablation table of several (--workdirs) or sequential multi-attribute edits (--compose,
`maae_tf.evaluation.compose`). What is measured and how: docs/method.md §7; the metrics:
`maae_tf.evaluation.registry`; the evaluators that compute them: `maae_tf.evaluation.evaluators`.

    python -m maae_tf.evaluate --workdir=runs/mouth_open [--num_images=500] [--seed=0]
    python -m maae_tf.evaluate --workdirs=runs/full,runs/entire,runs/no_id,runs/no_mask [--out=DIR]
    python -m maae_tf.evaluate --compose=runs/mouth_open,runs/blond_hair,runs/eyeglasses,runs/pale_skin

One run writes WORKDIR/eval/{metrics.json, report.md, examples.png, sweep.png, attribute_vs_delta.png}
and logs each phase (images/s and ETA while editing); a workdir without
config.json or checkpoint, or a missing dataset, exits with 2.
"""

from __future__ import annotations

import json
import os
import sys
import time

import tensorflow as tf
from absl import logging

from maae_tf import attributes, progress
from maae_tf.config import load_workdir_config
from maae_tf.data import layout, pipeline
from maae_tf.evaluation import classifier
from maae_tf.evaluation import compose as compose_lib
from maae_tf.evaluation import evaluators
from maae_tf.evaluation import identity as face_identity
from maae_tf.evaluation import metrics
from maae_tf.evaluation import report
from maae_tf.evaluation import scoring
from maae_tf.evaluation import visualize
from maae_tf.files import write_bytes_atomic, write_text_atomic
from maae_tf.model import precision
from maae_tf.model.maae import load_from_workdir, saved_checkpoints

EVAL_DIR = "eval"
VERSION = 3  # of the metrics (3: the judge's balanced accuracy): another version is never reused (--reuse)


def _load(workdir: str):
    """The run's model in float32 (whatever policy it trained under), its config and step."""
    if not os.path.isdir(workdir):
        raise FileNotFoundError(f"workdir {workdir!r} does not exist")
    with precision.policy_scope("float32"):
        return load_from_workdir(workdir)


def _request(config, num_images, seed, identity_network, sweep_images=None, lip_geometry=None) -> dict:
    """What an evaluation was asked for, with the config's defaults filled in."""
    chosen_lips = classifier.lip_geometry_on(config) if lip_geometry is None else lip_geometry
    return {"num_images": int(config.eval.num_images if num_images is None else num_images),
            "sweep_images": int(config.eval.sweep_images if sweep_images is None else sweep_images),
            "seed": int(config.seed if seed is None else seed),
            "identity_network": face_identity.embedder_kind(identity_network or config.eval.identity_network),
            "lip_geometry": bool(chosen_lips)}


def reusable(workdir: str, num_images: int | None = None, seed: int | None = None,
             identity_network: str | None = None, sweep_images: int | None = None,
             lip_geometry: bool | None = None) -> dict | None:
    """WORKDIR/eval/metrics.json when it holds this metrics VERSION, of the run's latest checkpoint,
    for the same request (image and sweep counts, seed, identity network, judge); else None."""
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
    want = _request(load_workdir_config(workdir), num_images, seed, identity_network, sweep_images, lip_geometry)
    saved = dict(m.get("request") or {})
    saved["identity_network"] = face_identity.current_name(saved.get("identity_network"))  # an older run's name
    saved.setdefault("lip_geometry", False)  # before the judge could add the lips' geometry
    same = m.get("version") == VERSION and saved == want and m.get("step") == int(latest.rsplit("-", 1)[1])
    return m if same else None


def test_batches(config, num_images: int, label_column: int):
    """The first `num_images` test images as batches {"image", "mask", "positive"} of arrays."""
    for batch in pipeline.images_dataset(config, "test", limit=num_images, batch_size=evaluators.BATCH):
        yield {"image": batch["image"].numpy(), "mask": batch["mask"].numpy(),
               "positive": batch["labels"].numpy()[:, label_column] > 0.5}


def judge_metrics(details: dict) -> dict:
    """The judge's accuracies on its own held-out real images (`classifier.for_dataset`'s
    test_details of one attribute), each with its count."""
    counts = {"balanced_accuracy": "num_images", "accuracy": "num_images",
              "accuracy_positives": "num_positives", "accuracy_negatives": "num_negatives"}
    out = {}
    for name, count in counts.items():
        out[f"classifier_{name}"], out[f"classifier_{name}_count"] = details[name], details[count]
    return out


def run_evaluators(config, judge_model, column: int, embedder, sweep_deltas, sweep_images: int) -> list:
    """The evaluators of one run's evaluation: every metric family, SSIM and identity included,
    the δ sweeps of the first `sweep_images` images."""
    return [evaluators.EditEvaluator(judge_model, column), evaluators.PixelEvaluator(ssim=True),
            evaluators.DiscriminatorEvaluator(), evaluators.IdentityEvaluator(embedder),
            evaluators.SweepEvaluator(judge_model, column, sweep_deltas, sweep_images,
                                      float(config.eval.sweep_tolerance))]


def write_pictures(model, config, out_dir: str, judge_model, column: int, sweep_deltas, num_examples: int) -> dict:
    """examples.png and sweep.png of the first `num_examples` test images; returns what
    metrics.json says of them (examples_columns, examples_rows)."""
    first = pipeline.images_dataset(config, "test", limit=num_examples, batch_size=num_examples)
    x = next(iter(first))["image"].numpy()
    scale = max(1, 128 // int(config.image_size))
    titles, cols = visualize.edit_columns(model, x, float(config.delta_max), sweep=5)
    visualize.write_png(os.path.join(out_dir, "examples.png"),
                        visualize.examples_grid(cols, visualize.example_titles(float(config.delta_max), 5), scale))
    strip, strip_p = scoring.sweep(model, x, judge_model, column, sweep_deltas)
    visualize.write_png(os.path.join(out_dir, "sweep.png"),
                        visualize.sweep_strip(strip, strip_p, scale=scale, deltas=sweep_deltas))
    return {"examples_columns": titles, "examples_rows": int(len(x))}


def write_delta_curve(out_dir: str, m: dict) -> None:
    """eval/attribute_vs_delta.png from the metrics' sweep_deltas and sweep_probability_by_label."""
    png = visualize.attribute_vs_delta_png(m["sweep_deltas"], m["sweep_probability_by_label"], m["attr"])
    write_bytes_atomic(os.path.join(out_dir, "attribute_vs_delta.png"), png)


def batch_logger(total: int):
    """The `evaluators.run` on_batch that logs each batch: images done of `total`, images/s, ETA
    and the seconds spent so far in the edits and in each evaluator."""
    tracker = progress.Tracker(total)

    def log(done: int, seconds: dict) -> None:
        parts = ", ".join(f"{name} {t:.0f} s" for name, t in seconds.items())
        logging.info("evaluate: editing and scoring %s (%s)", tracker.line(done), parts)
    return log



def evaluate(workdir: str, num_images: int | None = None, seed: int | None = None,
             num_examples: int = 8, identity_network: str | None = None, sweep_images: int | None = None,
             lip_geometry: bool | None = None) -> dict:
    """Evaluates the latest checkpoint of `workdir`; writes WORKDIR/eval/{metrics.json, report.md,
    examples.png, sweep.png, attribute_vs_delta.png} and returns the metrics. `lip_geometry`: whether
    the mouth's judge adds the lips' geometry (None: the run's config.eval.classifier_lip_geometry).
    Raises FileNotFoundError for a workdir without config or checkpoint and for a missing dataset."""
    t0 = time.perf_counter()
    model, config, step = _load(workdir)
    t = progress.phase("evaluate", f"restored {workdir} at step {step}", t0)
    pipeline.check_layout(config.data_dir)
    attr = attributes.resolve(config.attr)
    request = _request(config, num_images, seed, identity_network, sweep_images, lip_geometry)
    config.eval.classifier_lip_geometry = request["lip_geometry"]
    if request["num_images"] < 1 or request["sweep_images"] < 1:
        raise ValueError(f"num_images and sweep_images must be positive, got {request['num_images']} and "
                         f"{request['sweep_images']}")
    out_dir = os.path.join(workdir, EVAL_DIR)
    os.makedirs(out_dir, exist_ok=True)

    judge_model, clf_info = classifier.for_dataset(config, [attr], seed=request["seed"])
    column = classifier.column(clf_info, attr)
    embedder = face_identity.make_embedder(request["identity_network"], config)
    t = progress.phase("evaluate", f"attribute classifier and identity network {embedder.name} ready", t)
    sweep_deltas = visualize.sweep_values(float(config.delta_max), int(config.eval.sweep_steps))
    scores, truth = evaluators.run(model, test_batches(config, request["num_images"], attributes.index(attr)),
                                   run_evaluators(config, judge_model, column, embedder, sweep_deltas,
                                                  request["sweep_images"]),
                                   config.delta_max, source=f"the test split of {config.data_dir!r}",
                                   on_batch=batch_logger(request["num_images"]))
    n = int(truth.size)
    t = progress.phase("evaluate", f"{n} test images edited and scored (δ sweeps of the first "
                                   f"{scores['sweep_monotonic_share_count']})", t)
    m = {"version": VERSION, "request": request, "workdir": os.path.abspath(workdir), "step": int(step),
         "attr": attr, "delta": float(config.delta_max), "seed": request["seed"], "split": "test",
         "data_dir": str(config.data_dir), "image_size": int(config.image_size),
         "num_images": n, "num_positives": int(truth.sum()), "num_negatives": int((~truth).sum()),
         **judge_metrics(clf_info["test_details"][attr]), **scores,
         "classifier": {k: clf_info.get(k) for k in ("steps", "batch", "seed", "reused", "train_seconds", "path",
                                                     "attrs", "mean_test_accuracy", "mean_test_balanced_accuracy",
                                                     "split_note", "weights_sha256", "terms",
                                                     "network_test_details")},
         "identity_network": embedder.name,
         "sweep_deltas": [float(d) for d in sweep_deltas],
         "sweep_tolerance": float(config.eval.sweep_tolerance), "psnr_cap_db": metrics.PSNR_CAP_DB}
    if m["background_psnr_count"] == 0:
        logging.warning("no background masks in %s: background metrics are null",
                        os.path.join(config.data_dir, layout.MASK_DIR))
    m.update(write_pictures(model, config, out_dir, judge_model, column, sweep_deltas, min(num_examples, n)))
    write_delta_curve(out_dir, m)
    progress.phase("evaluate", "examples.png, sweep.png and attribute_vs_delta.png written", t)
    m["seconds"] = round(time.perf_counter() - t0, 2)
    m["images_per_second"] = round(n / m["seconds"], 2)
    m = report.finite_or_none(m)
    report.write_json(os.path.join(out_dir, "metrics.json"), m)
    write_text_atomic(os.path.join(out_dir, "report.md"), report.report_markdown(m))
    return m


# ----- several runs: the ablation table ------------------------------------------------------------

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


def compare(workdirs, out: str | None = None, reuse: bool = False, **kwargs) -> tuple[str, str]:
    """Evaluates every run of `workdirs` (`evaluate`; with `reuse`, a run's `reusable` metrics.json
    stands), writes OUT/comparison.{md,json} and returns (the markdown table, OUT)."""
    if len(workdirs) < 1:
        raise ValueError("--workdirs names no run")
    request = {k: kwargs.get(k) for k in ("num_images", "seed", "identity_network", "sweep_images", "lip_geometry")}
    rows = []
    for w in workdirs:
        m = reusable(w, **request) if reuse else None
        if m is not None:
            logging.info("reusing %s (step %d)", os.path.join(w, EVAL_DIR, "metrics.json"), m["step"])
        rows.append(m if m is not None else evaluate(w, **kwargs))
    variants = config_differences(workdirs)
    out = out or os.path.join(os.path.dirname(os.path.abspath(workdirs[0])), "comparison")
    os.makedirs(out, exist_ok=True)
    report.write_json(os.path.join(out, "comparison.json"),
                      {"runs": [dict(m, variant=v) for m, v in zip(rows, variants)]})
    table = report.compare_markdown(rows, variants)
    write_text_atomic(os.path.join(out, "comparison.md"), table)
    return table, out


# ----- command line ---------------------------------------------------------------------------------

def evaluate_command(workdir: str | None, workdirs: list[str] | None, compose: list[str] | None,
                     out: str | None, reuse: bool = False, identity_network: str | None = None,
                     sweep_images: int | None = None, **kwargs) -> None:
    """`python -m maae_tf.evaluate`: one run (`workdir`), a comparison (`workdirs`) or
    multi-attribute edits (`compose`, which sweeps nothing), printed; `kwargs` are num_images, seed,
    num_examples and lip_geometry. A bad input ends in one `error:` line and exit 2."""
    if sum(map(bool, (workdir, workdirs, compose))) != 1:
        print("error: give exactly one of --workdir (one run), --workdirs (compare runs) or --compose "
              "(multi-attribute edits)", file=sys.stderr)
        sys.exit(2)
    # same numbers for the same checkpoint and seed, also on GPUs
    tf.config.experimental.enable_op_determinism()
    try:
        if workdir:
            m = evaluate(workdir, identity_network=identity_network, sweep_images=sweep_images, **kwargs)
            print(report.run_lines(m, os.path.join(m["workdir"], EVAL_DIR)))
        elif workdirs:
            t0 = time.perf_counter()
            table, out = compare(workdirs, out, reuse=reuse, identity_network=identity_network,
                                 sweep_images=sweep_images, **kwargs)
            print(table)
            print(f"wrote {out}/comparison.md, comparison.json in {time.perf_counter() - t0:.1f} s")
        else:
            r = compose_lib.multi_attribute(compose, out=out, **kwargs)
            print(report.multi_attribute_markdown(r))
            print(f"{r['num_images']} images in {r['seconds']:.1f} s")
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
