"""Image metrics of the evaluation protocol (docs/method.md §7), per image, in NumPy.

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

import cv2
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


SSIM_FILTER_SIZE = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03


def _gaussian_kernel(size: int = SSIM_FILTER_SIZE, sigma: float = SSIM_SIGMA) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x ** 2) / (2.0 * sigma ** 2))
    return g / g.sum()


def _blur_valid(x: np.ndarray) -> np.ndarray:
    """Gaussian blur of [N, H, W, C] keeping only the positions where the 11x11 window fits
    ('VALID', as tf.image.ssim filters): [N, H-10, W-10, C]."""
    k = _gaussian_kernel()
    r = SSIM_FILTER_SIZE // 2
    n, h, w, c = x.shape
    planes = x.transpose(0, 3, 1, 2).reshape(n * c, h, w)
    out = np.stack([cv2.sepFilter2D(p, cv2.CV_64F, k, k, borderType=cv2.BORDER_REFLECT)[r:h - r, r:w - r]
                    for p in planes])
    return out.reshape(n, c, h - 2 * r, w - 2 * r).transpose(0, 2, 3, 1)


def ssim_map(a, b) -> np.ndarray:
    """The SSIM index at every position where an 11x11 Gaussian window (σ = 1.5) fits, per channel
    (Wang et al. 2004; the constants and filtering of tf.image.ssim, peak 1 on the [0, 1] scale):
    [N, H-10, W-10, C]."""
    x, y = to_unit(_batch(a)), to_unit(_batch(b))
    if x.shape != y.shape:
        raise ValueError(f"ssim: image shapes differ: {x.shape} vs {y.shape}")
    if min(x.shape[1:3]) < SSIM_FILTER_SIZE:
        raise ValueError(f"ssim needs images of at least {SSIM_FILTER_SIZE}x{SSIM_FILTER_SIZE}, got {x.shape[1:3]}")
    c1, c2 = SSIM_K1 ** 2, SSIM_K2 ** 2
    mx, my = _blur_valid(x), _blur_valid(y)
    sxx = _blur_valid(x * x) - mx * mx
    syy = _blur_valid(y * y) - my * my
    sxy = _blur_valid(x * y) - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(a, b, mask=None) -> np.ndarray:
    """Per-image SSIM between [-1, 1] images: the mean of `ssim_map` over positions and channels,
    equal to tf.image.ssim(max_val=1) on the [0, 1] images when `mask` is None. With a mask
    (1 = background), the mean is weighted by the mask at each window's centre (windows near the
    face boundary also see a few face pixels); NaN for an empty mask."""
    s = ssim_map(a, b)
    if mask is None:
        return masked_mean(s)
    r = SSIM_FILTER_SIZE // 2
    x = _batch(a)
    m = _mask(mask, x)[:, r:x.shape[1] - r, r:x.shape[2] - r]
    return masked_mean(s, m)


def monotonic_share(scores, tolerance: float = 0.0) -> tuple[float | None, int]:
    """Share of rows of `scores` [N, T] (a score, e.g. the classifier's probability of the
    attribute, along a δ sweep from -δ0 to +δ0) that never decrease by more than `tolerance` from one
    δ to the next, and how many rows; (None, 0) for none."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 2 or s.shape[1] < 2:
        raise ValueError(f"monotonic_share wants scores [N, T] with T >= 2, got shape {s.shape}")
    if s.shape[0] == 0:
        return None, 0
    ok = np.all(np.diff(s, axis=1) >= -float(tolerance), axis=1)
    return float(ok.mean()), int(s.shape[0])


def column_spread(scores) -> dict:
    """Per column of `scores` [N, T] (P(attribute) along a δ sweep): the row count and lists of T
    values for the mean, standard deviation and quartiles; empty lists when N is 0."""
    s = np.asarray(scores, np.float64)
    if s.ndim != 2:
        raise ValueError(f"column_spread wants scores [N, T], got shape {s.shape}")
    if s.shape[0] == 0:
        return {"count": 0, "mean": [], "sd": [], "q25": [], "median": [], "q75": []}
    q25, median, q75 = np.percentile(s, [25, 50, 75], axis=0)
    return {"count": int(s.shape[0]), "mean": s.mean(axis=0).tolist(), "sd": s.std(axis=0).tolist(),
            "q25": q25.tolist(), "median": median.tolist(), "q75": q75.tolist()}
