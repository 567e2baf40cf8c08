"""Image grids of edits: input | reconstruction (δ = 0) | +δ0 | -δ0 | δ sweep (paper Fig. 6).
Shared by the TensorBoard image summaries (train) and the report PNGs (evaluate)."""

from __future__ import annotations

import io

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


def annotate(tile_grid: np.ndarray, texts, rows: int, cols: int, tile: int, pad: int = 2,
             band: int = 14) -> np.ndarray:
    """Adds a white band of height `band` under every row of a `grid` of rows x cols tiles of size
    `tile` and writes texts[i][j] (a short string) under tile (i, j)."""
    h = pad + rows * (tile + pad + band)
    out = np.full((h, tile_grid.shape[1], 3), 255, np.uint8)
    scale = max(0.3, min(0.5, tile / 160))
    for i in range(rows):
        src = tile_grid[pad + i * (tile + pad): pad + i * (tile + pad) + tile]
        y = pad + i * (tile + pad + band)
        out[y:y + tile] = src
        for j in range(cols):
            x = pad + j * (tile + pad)
            cv2.putText(out, str(texts[i][j]), (x + 1, y + tile + band - 4), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
    return out


def sweep_strip(columns: list[np.ndarray], probabilities: np.ndarray, scale: int = 1) -> np.ndarray:
    """The δ sweep of paper Fig. 6: one row per example, one column per δ (columns[t] = G(x, δ_t),
    [N, S, S, 3] in [-1, 1]), each tile labelled with the classifier's P(attribute) for it
    (probabilities [N, T])."""
    g = grid(columns)
    tile = columns[0].shape[1]
    if scale > 1:
        g = cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    p = np.asarray(probabilities)
    texts = [[f"P={p[i, t]:.2f}" for t in range(p.shape[1])] for i in range(p.shape[0])]
    return annotate(g, texts, p.shape[0], p.shape[1], tile * scale, pad=2 * scale)


# the in-training evaluation's curves: (registry key of the metric, label, axis) per line
CURVE_LINES = (("attribute_accuracy_plus", "negatives opened by +δ0", "share"),
               ("attribute_accuracy_minus", "positives closed by −δ0", "share"),
               ("reconstruction_attribute_accuracy", "label kept by G(x, 0)", "share"),
               ("background_psnr", "background PSNR (dB)", "db"))


def curve_png(history: list[dict], title: str = "") -> bytes:
    """The time-to-quality plot of a run (eval/curve.png): the in-training evaluation's editing
    accuracy both ways, label kept by G(x, 0) and background PSNR, against steps (left) and wall
    time (right). `history`: one dict per evaluation with "step", "seconds" and the CURVE_LINES
    keys (None where nothing counted). Returns PNG bytes."""
    import matplotlib  # heavy, and needed by this plot alone

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 4), dpi=100)
    steps = [h["step"] for h in history]
    minutes = [h["seconds"] / 60.0 for h in history]
    for k, (xs, xlabel) in enumerate(((steps, "training step"), (minutes, "training wall time (min)"))):
        ax = fig.add_subplot(1, 2, k + 1)
        db = ax.twinx()
        for key, label, axis in CURVE_LINES:
            ys = [np.nan if h.get(key) is None else h[key] for h in history]
            (db if axis == "db" else ax).plot(xs, ys, marker="o", markersize=3, label=label,
                                              color="black" if axis == "db" else None,
                                              linestyle="--" if axis == "db" else "-")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of held-out test images")
        db.set_ylabel("dB")
        ax.grid(alpha=0.3)
        if k == 0:
            lines = ax.get_lines() + db.get_lines()
            ax.legend(lines, [line.get_label() for line in lines], loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
