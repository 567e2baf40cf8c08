"""The evaluation's metrics, each named once: its key in metrics.json (with `<key>_count`, the
images it averages), how report.md, the comparison table and TensorBoard show it. What each one
measures: docs/method.md §7."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Metric:
    """One number of an evaluation.

    Args:
      key: its key in metrics.json (and in the evaluators' summaries).
      title: its row in report.md and in the command's printout.
      unit: "share", "dB", "SSIM", "L1" ([0, 1] scale), "cosine" or "probability".
      higher_is_better: True or False; None for a reference figure that is no goal.
      short: its column in the comparison table (None: not a column).
      tag: its TensorBoard scalar eval/<tag> during training (None: not logged there).
      report: False for a detail kept in metrics.json only (no report row).
    """

    key: str
    title: str
    unit: str
    higher_is_better: bool | None
    short: str | None = None
    tag: str | None = None
    report: bool = True


def _pixel(place: str, title: str) -> tuple[Metric, ...]:
    """PSNR, SSIM and L1 of one comparison (`place`: background or reconstruction)."""
    return (Metric(f"{place}_psnr", f"{place} PSNR (dB), {title}", "dB", True),
            Metric(f"{place}_ssim", f"{place} SSIM, {title}", "SSIM", True),
            Metric(f"{place}_l1", f"{place} L1 ([0, 1] scale), {title}", "L1", False))


def _one_edit(m: Metric, sign: str) -> Metric:
    """The detail of background metric `m` over one edit (sign "plus" or "minus")."""
    return Metric(f"{m.key}_{sign}", f"{m.title.rsplit(',', 1)[0]}, x vs G(x, {'+' if sign == 'plus' else '−'}δ0)",
                  m.unit, m.higher_is_better, report=False)


_BACKGROUND = _pixel("background", "x vs G(x, ±δ0)")
_RECONSTRUCTION = _pixel("reconstruction", "x vs G(x, 0)")

METRICS: tuple[Metric, ...] = (
    Metric("classifier_balanced_accuracy", "classifier balanced accuracy on its held-out real images", "share", True),
    Metric("classifier_accuracy", "classifier accuracy on its held-out real images", "share", True),
    Metric("classifier_accuracy_positives", "classifier accuracy on its held-out real positives", "share", True,
           report=False),
    Metric("classifier_accuracy_negatives", "classifier accuracy on its held-out real negatives", "share", True,
           report=False),
    Metric("classifier_balanced_accuracy_eval_images", "classifier balanced accuracy on the evaluated real images",
           "share", True),
    Metric("classifier_accuracy_eval_images", "classifier accuracy on the evaluated real images", "share", True),
    Metric("classifier_accuracy_eval_positives", "classifier accuracy on the evaluated real positives", "share", True,
           report=False),
    Metric("classifier_accuracy_eval_negatives", "classifier accuracy on the evaluated real negatives", "share", True,
           report=False),
    Metric("attribute_accuracy_plus", "attribute accuracy, negatives + δ0 judged positive", "share", True,
           tag="attribute_accuracy_plus"),
    Metric("attribute_accuracy_minus", "attribute accuracy, positives − δ0 judged negative", "share", True,
           tag="attribute_accuracy_minus"),
    Metric("attribute_accuracy", "attribute accuracy, both edits", "share", True, short="editing acc.",
           tag="attribute_accuracy"),
    Metric("attribute_keep_accuracy", "label kept by the edit towards it (negatives − δ0, positives + δ0)",
           "share", True, short="keep acc.", tag="attribute_keep_accuracy"),
    Metric("reconstruction_attribute_accuracy", "label kept by G(x, 0)", "share", True,
           short="recon keeps label", tag="reconstruction_attribute_accuracy"),
    Metric("reconstruction_attribute_accuracy_positives", "label kept by G(x, 0), positives", "share", True,
           report=False),
    Metric("reconstruction_attribute_accuracy_negatives", "label kept by G(x, 0), negatives", "share", True,
           report=False),
    dataclasses.replace(_BACKGROUND[0], short="bg PSNR", tag="background_psnr"),
    dataclasses.replace(_BACKGROUND[1], short="bg SSIM"),
    dataclasses.replace(_BACKGROUND[2], short="bg L1"),
    *(_one_edit(m, sign) for m in _BACKGROUND for sign in ("plus", "minus")),
    dataclasses.replace(_RECONSTRUCTION[0], short="recon PSNR", tag="reconstruction_psnr"),
    dataclasses.replace(_RECONSTRUCTION[1], short="recon SSIM"),
    _RECONSTRUCTION[2],
    Metric("identity_similarity", "identity similarity, cos(x, flipping edit)", "cosine", True, short="identity"),
    Metric("fidelity_score", "fidelity score, sigmoid D(flipping edit)", "probability", True, short="fidelity",
           tag="fidelity"),
    Metric("real_fidelity_score", "fidelity score of the real images", "probability", None),
    Metric("sweep_monotonic_share", "share of δ sweeps with P(attribute) monotonic", "share", True,
           short="monotonic sweeps"),
    Metric("sweep_direction_share", "share of δ sweeps from P < 0.5 at −δ0 to P > 0.5 at +δ0", "share", True,
           short="directed sweeps"),
)

BY_KEY = {m.key: m for m in METRICS}


def report_rows() -> tuple[Metric, ...]:
    """The rows of report.md and of the command's printout, in order."""
    return tuple(m for m in METRICS if m.report)


def compare_columns() -> tuple[Metric, ...]:
    """The metric columns of the comparison table, in order."""
    return tuple(m for m in METRICS if m.short)


def tensorboard_metrics() -> tuple[Metric, ...]:
    """The metrics the in-training evaluation logs as eval/<tag>."""
    return tuple(m for m in METRICS if m.tag)


def fmt(value, digits: int = 4) -> str:
    """A metric's value as the tables print it: 4 significant digits, "n/a" for None."""
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
