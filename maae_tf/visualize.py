"""Image grids of edits: input | reconstruction (δ = 0) | +δ0 | -δ0 | δ sweep (paper Fig. 6).
Shared by the TensorBoard image summaries (train) and the report PNGs (evaluate)."""

from __future__ import annotations

import cv2
import numpy as np

from maae_tf.files import write_image


def to_uint8(images) -> np.ndarray:
    """[-1, 1] float images -> uint8 [0, 255]."""
    x = np.asarray(images, dtype=np.float32)
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def sweep_values(delta_max: float, steps: int) -> np.ndarray:
    return np.linspace(-delta_max, delta_max, steps).astype(np.float32)


def edit_columns(model, images, delta_max: float, sweep: int = 5) -> tuple[list[str], list[np.ndarray]]:
    """Column titles and float images [-1, 1]: input, reconstruction, +δ0, -δ0, then the sweep."""
    titles = ["input", "recon", f"+{delta_max:g}", f"-{delta_max:g}"]
    cols = [np.asarray(images), model.generate(images, 0.0).numpy(),
            model.generate(images, delta_max).numpy(), model.generate(images, -delta_max).numpy()]
    for d in sweep_values(delta_max, sweep) if sweep else []:
        titles.append(f"{d:+.1f}")
        cols.append(model.generate(images, float(d)).numpy())
    return titles, cols


def grid(columns: list[np.ndarray], pad: int = 2) -> np.ndarray:
    """Tiles columns (each [N, H, W, 3] in [-1, 1]) into one uint8 image, one example per row."""
    cols = [to_uint8(c) for c in columns]
    n, h, w, _ = cols[0].shape
    out = np.full((n * (h + pad) + pad, len(cols) * (w + pad) + pad, 3), 255, np.uint8)
    for j, c in enumerate(cols):
        for i in range(n):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[y:y + h, x:x + w] = c[i]
    return out


def write_png(path: str, image_rgb: np.ndarray, scale: int = 1) -> None:
    """Writes an RGB uint8 image atomically (temporary file, then rename)."""
    if scale > 1:
        image_rgb = cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    write_image(path, image_rgb)
