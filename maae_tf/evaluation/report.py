"""What an evaluation writes: metrics as JSON, report.md of one run, the comparison table of
several runs and the multi-attribute table; rows and columns come from
`maae_tf.evaluation.registry`."""

from __future__ import annotations

import json
import math
import os

import numpy as np

from maae_tf.evaluation import metrics
from maae_tf.evaluation import registry
from maae_tf.files import write_text_atomic

fmt = registry.fmt


def finite_or_none(v):
    """`v` with NaN / inf as None and NumPy scalars as Python ones, through dicts and lists."""
    if isinstance(v, dict):
        return {k: finite_or_none(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [finite_or_none(x) for x in v]
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def write_json(path: str, obj) -> None:
    """Writes `obj` as JSON atomically (NaN / inf become null)."""
    write_text_atomic(path, json.dumps(finite_or_none(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def judge_weights(classifier: dict) -> str:
    """Which weights judged: figures of two runs compare only under the same judge (two judges that
    both pass the bar differ by up to 0.05 on one attribute, docs/method.md §10)."""
    sha = classifier.get("weights_sha256")
    return f"weights sha256 {sha[:16]}" if sha else "weights sha256 not recorded"


def report_markdown(m: dict) -> str:
    """report.md of one run's metrics.json `m`."""
    lines = [f"# Evaluation of {m['workdir']}", "",
             f"Attribute **{m['attr']}**, checkpoint step {m['step']}, δ0 = {m['delta']:g}, "
             f"{m['num_images']} test images of `{m['data_dir']}` ({m['num_negatives']} negatives, "
             f"{m['num_positives']} positives), classifier seed {m['seed']}, {m['seconds']:.1f} s.", "",
             "| metric | value | images |", "|---|---|---|"]
    for metric in registry.report_rows():
        lines.append(f"| {metric.title} | {fmt(m.get(metric.key))} | {m.get(metric.key + '_count', '')} |")
    lines += ["", f"Classifier: {m['classifier']['split_note']}; {judge_weights(m['classifier'])}.", "",
              f"Identity network: {m['identity_network']}.", "",
              f"PSNR: {metrics.PSNR_AVERAGING}. Background counts are (image, edit) pairs: each image with "
              "a non-empty background mask counts once per edit (+δ0, -δ0). What each metric measures: "
              "docs/method.md §7.", "",
              f"Sweep: δ = {', '.join(f'{d:+.2f}' for d in m['sweep_deltas'])}; mean P(attribute) "
              f"{', '.join(f'{p:.2f}' for p in m['sweep_mean_probability'])} "
              f"(tolerance {m['sweep_tolerance']:g}).", "",
              "![examples](examples.png)", "",
              "Columns of examples.png: " + " | ".join(m["examples_columns"]) + ".", "",
              "![δ sweep](sweep.png)", "",
              "![P(attribute) against δ](attribute_vs_delta.png)", ""]
    return "\n".join(lines)


def run_lines(m: dict, out_dir: str) -> str:
    """The command's printout of one run's metrics `m`, written to `out_dir`."""
    rows = registry.report_rows()
    width = max(len(metric.key) for metric in rows)
    lines = [f"{m['attr']} at step {m['step']}, {m['num_images']} test images "
             f"({m['num_negatives']} negatives, {m['num_positives']} positives), δ0 = {m['delta']:g}, "
             f"identity network: {m['identity_network']}"]
    lines += [f"  {metric.key:<{width}}  {fmt(m.get(metric.key)):>8}   (n = {m.get(metric.key + '_count')})"
              for metric in rows]
    lines.append(f"wrote {out_dir}/metrics.json, report.md, examples.png, sweep.png, attribute_vs_delta.png "
                 f"in {m['seconds']:.1f} s ({m['images_per_second']:g} images/s)")
    return "\n".join(lines)


def compare_markdown(rows: list[dict], variants: list[str]) -> str:
    """comparison.md: one row per run's metrics (old metrics.json files too), its config variant."""
    columns = registry.compare_columns()
    lines = ["# Comparison of runs", "",
             "Each run evaluated on its own test split with its latest checkpoint (`python -m maae_tf.evaluate`); "
             "the variant column lists the config keys that differ from the first run.", "",
             "| run | variant | step | images | " + " | ".join(metric.short for metric in columns) + " |",
             "|---|---|---|---|" + "---|" * len(columns)]
    for m, variant in zip(rows, variants):
        cells = [fmt(m.get(metric.key)) for metric in columns]
        lines.append(f"| {os.path.basename(m['workdir'])} | {variant} | {m['step']} | {m['num_images']} | "
                     + " | ".join(cells) + " |")
    lines += ["", "Identity networks: " + "; ".join(sorted({m["identity_network"] for m in rows})) + ".", "",
              "Counts: editing accuracy over all images (negatives +δ0, positives −δ0); background metrics over "
              "(image, edit) pairs, both edits; identity and fidelity over the flipping edits; monotonic sweeps "
              "over config.eval.sweep_images images.", ""]
    return "\n".join(lines)


# the multi-attribute table's rows: (title, key of each row of multi_attribute.json)
MULTI_ATTRIBUTE_ROWS = (("M-AAE fidelity score (0 to 1)", "fidelity_score"),
                        ("editing accuracy, all attributes flipped", "attribute_accuracy_all"),
                        ("editing accuracy, per attribute", "attribute_accuracy_per_attribute"),
                        ("background PSNR (dB)", "background_psnr"))


def multi_attribute_markdown(r: dict) -> str:
    """multi_attribute.md, the paper's Table 2 layout, of multi_attribute.json `r`."""
    ks = [row["num_attributes"] for row in r["rows"]]
    head = "| Num of manipulated attributes | " + " | ".join(str(k) for k in ks) + " |"
    lines = ["# Multi-attribute manipulation (paper Table 2 layout)", "",
             f"Sequential edits of {r['num_images']} test images of `{r['data_dir']}`: column k applies the "
             f"first k of {', '.join(r['attributes'])} in order, each flipping its attribute (+δ0 on a "
             "negative, −δ0 on a positive). Fidelity: mean over the k runs of sigmoid D_j(final image) at "
             "the head of attribute j's new label. Every cell averages all the images.", "",
             head, "|---|" + "---|" * len(ks)]
    for title, key in MULTI_ATTRIBUTE_ROWS:
        lines.append(f"| {title} | " + " | ".join(fmt(row.get(key)) for row in r["rows"]) + " |")
    lines += ["", "Classifier test accuracy: " + ", ".join(f"{a} {fmt(v)}" for a, v in
                                                           r["classifier_test_accuracy"].items()) + ".", "",
              "![multi-attribute edits](multi_attribute.png)", "",
              "Columns: input, then after 1, 2, ... attributes.", ""]
    return "\n".join(lines)
