"""Image metrics of the evaluation protocol (DESIGN.md §7), per image, in NumPy.

Conventions shared by every function here:

- Images are float arrays [N, H, W, C] (or one image [H, W, C]) in the model's range [-1, 1];
  each metric maps them to [0, 1] first (`to_unit`), so PSNR uses a peak of 1.0 and L1 is in
  units of the [0, 1] range.
- Masks are [N, H, W, 1] (or [H, W, 1] / [H, W]) weights in [0, 1], 1 = background, as the
  CelebA reader gives them (soft at the edges after resizing). A masked mean is
  sum(m * err) / (sum(m) * C): a weighted mean over the pixels the mask selects; pixels with
  m = 0 (the face) never count, whatever they hold.
- Each function returns one value per image (shape [N]); the caller averages. An image whose mask
  selects nothing (sum(m) == 0, e.g. a dataset without masks) gets NaN, and `mean_finite` leaves
  it out and says how many images it averaged.
- PSNR of identical images: MSE is floored at `MSE_FLOOR` = 1e-10, so PSNR is capped at
  `PSNR_CAP_DB` = 100 dB (finite, so averages and JSON stay well defined).
"""

from __future__ import annotations

import numpy as np

MSE_FLOOR = 1e-10
PSNR_CAP_DB = float(10.0 * np.log10(1.0 / MSE_FLOOR))  # 100 dB
PSNR_AVERAGING = ("mean over images of per-image PSNR (per-image MSE over the selected pixels, "
                  "images mapped to [0, 1], peak 1.0, capped at 100 dB)")


def to_unit(images) -> np.ndarray:
    """[-1, 1] images -> float64 [0, 1] (values outside are clipped)."""
    return np.clip((np.asarray(images, np.float64) + 1.0) / 2.0, 0.0, 1.0)


def _batch(x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    return x[None] if x.ndim == 3 else x


def _mask(mask, like: np.ndarray) -> np.ndarray:
    m = np.asarray(mask, np.float64)
    if m.ndim == like.ndim - 1 and m.shape[-1] != 1:  # [N, H, W] or [H, W] without a channel
        m = m[..., None]
    if m.ndim == 3 and like.ndim == 4:
        m = m[None]
    if m.ndim == 2:
        m = m[None, ..., None]
    return np.broadcast_to(m, like.shape[:-1] + (1,))


def masked_mean(values, mask=None) -> np.ndarray:
    """Per-image mean of `values` [N, H, W, C] over the pixels `mask` selects (all when None).

    Returns [N]; NaN for an image whose mask is all zero.
    """
    v = _batch(values)
    if mask is None:
        return v.reshape(v.shape[0], -1).mean(axis=1)
    m = _mask(mask, v)
    weight = m.reshape(m.shape[0], -1).sum(axis=1) * v.shape[-1]
    total = (v * m).reshape(v.shape[0], -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1.0), np.nan)


def mse(a, b, mask=None) -> np.ndarray:
    """Per-image mean squared error of [-1, 1] images on the [0, 1] scale, over `mask` if given."""
    return masked_mean((to_unit(_batch(a)) - to_unit(_batch(b))) ** 2, mask)


def l1(a, b, mask=None) -> np.ndarray:
    """Per-image mean absolute error of [-1, 1] images on the [0, 1] scale, over `mask` if given."""
    return masked_mean(np.abs(to_unit(_batch(a)) - to_unit(_batch(b))), mask)


def psnr_from_mse(mse_values) -> np.ndarray:
    """PSNR in dB for a peak of 1.0: 10·log10(1 / max(MSE, 1e-10)); capped at 100 dB, NaN stays NaN."""
    m = np.asarray(mse_values, np.float64)
    with np.errstate(invalid="ignore"):
        return 10.0 * np.log10(1.0 / np.maximum(m, MSE_FLOOR))


def psnr(a, b, mask=None) -> np.ndarray:
    """Per-image PSNR (dB) between [-1, 1] images `a` and `b`, over the pixels of `mask` if given
    (MSE over the selected pixels only, e.g. `mask` = background mask for background preservation).
    Identical images give `PSNR_CAP_DB` (100 dB); an empty mask gives NaN."""
    return psnr_from_mse(mse(a, b, mask))


def mean_finite(values) -> tuple[float | None, int]:
    """(mean of the finite values, how many); (None, 0) when there are none (JSON-friendly)."""
    v = np.asarray(values, np.float64).ravel()
    v = v[np.isfinite(v)]
    return (float(v.mean()), int(v.size)) if v.size else (None, 0)


def flip_rate(predicted_positive, want_positive: bool) -> tuple[float | None, int]:
    """Share of images the classifier judges to carry (`want_positive`) or lack the attribute,
    and how many images it is over; (None, 0) for none."""
    p = np.asarray(predicted_positive, bool).ravel()
    if p.size == 0:
        return None, 0
    hits = p if want_positive else ~p
    return float(hits.mean()), int(p.size)
