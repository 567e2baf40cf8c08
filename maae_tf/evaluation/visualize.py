"""Image grids of edits: input | reconstruction (δ = 0) | +δ0 | -δ0 | δ sweep (paper Fig. 6), with
column titles for the report PNGs; the in-training curve and P(attribute) against δ. Shared by the
TensorBoard image summaries (train) and the report PNGs (evaluate)."""

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


def upscale(image_rgb: np.ndarray, scale: int) -> np.ndarray:
    """`image_rgb` enlarged `scale` times by pixel repetition (no new detail, no blur)."""
    if scale <= 1:
        return image_rgb
    return cv2.resize(image_rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)


def write_png(path: str, image_rgb: np.ndarray, scale: int = 1) -> None:
    """Writes an RGB uint8 image atomically (temporary file, then rename)."""
    write_image(path, upscale(image_rgb, scale))


def example_titles(delta_max: float, sweep: int = 5) -> list[str]:
    """The header titles of `edit_columns`' columns, in ASCII (Pillow's default font has no δ)."""
    return (["input", "reconstruction", f"+delta0 = +{delta_max:g}", f"-delta0 = -{delta_max:g}"]
            + [f"delta = {d:+.1f}" for d in (sweep_values(delta_max, sweep) if sweep else [])])


def header_height(tile: int) -> int:
    """Height of the title strip above tiles of `tile` pixels: one line of `header_font`."""
    return header_font_size(tile) + 8


def header_font_size(tile: int) -> int:
    return int(np.clip(tile // 10, 10, 16))


def with_header(tile_grid: np.ndarray, titles, tile: int, pad: int = 2) -> np.ndarray:
    """A white strip of `header_height` on top of a `grid` of columns `tile` pixels wide, with
    titles[j] centred over column j in Pillow's default font; the grid itself is unchanged."""
    from PIL import Image, ImageDraw, ImageFont

    band = header_height(tile)
    strip = Image.new("RGB", (tile_grid.shape[1], band), "white")
    draw = ImageDraw.Draw(strip)
    font = ImageFont.load_default(size=header_font_size(tile))
    for j, title in enumerate(titles):
        centre = pad + j * (tile + pad) + tile / 2
        draw.text((centre, band / 2), str(title), fill="black", font=font, anchor="mm")
    return np.concatenate([np.asarray(strip, np.uint8), tile_grid], axis=0)


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


def sweep_strip(columns: list[np.ndarray], probabilities: np.ndarray, scale: int = 1,
                deltas=None) -> np.ndarray:
    """The δ sweep of paper Fig. 6: one row per example, one column per δ (columns[t] = G(x, δ_t),
    [N, S, S, 3] in [-1, 1]), each tile labelled with the classifier's P(attribute) for it
    (probabilities [N, T]) and, given `deltas` [T], each column titled with its δ."""
    g = upscale(grid(columns), scale)
    tile = columns[0].shape[1] * scale
    p = np.asarray(probabilities)
    texts = [[f"P={p[i, t]:.2f}" for t in range(p.shape[1])] for i in range(p.shape[0])]
    strip = annotate(g, texts, p.shape[0], p.shape[1], tile, pad=2 * scale)
    if deltas is None:
        return strip
    return with_header(strip, [f"delta = {float(d):+g}" for d in deltas], tile, pad=2 * scale)


def examples_grid(columns: list[np.ndarray], titles, scale: int = 1) -> np.ndarray:
    """examples.png: `grid` of `columns` enlarged `scale` times under a strip of column titles."""
    return with_header(upscale(grid(columns), scale), titles, columns[0].shape[1] * scale, pad=2 * scale)


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
    fig = new_figure((11, 4))
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
    return png_bytes(fig)


def new_figure(size: tuple[float, float]):
    """A matplotlib Figure of `size` inches at 100 dpi, drawn off screen."""
    import matplotlib  # heavy, and needed by the plots alone

    matplotlib.use("Agg")  # no display: files only
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=100)


def png_bytes(fig) -> bytes:
    """The figure, laid out, as PNG bytes."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# the groups of eval/attribute_vs_delta.png: (key of sweep_probability_by_label, label, colour)
DELTA_GROUPS = (("negatives", "negatives (attribute absent)", "tab:blue"),
                ("positives", "positives (attribute present)", "tab:orange"))


def attribute_vs_delta_png(deltas, by_label: dict, attr: str) -> bytes:
    """eval/attribute_vs_delta.png: the judge's P(attribute) of G(x, δ) against δ, the mean line
    and the interquartile band of each group of `by_label` (the sweep evaluator's
    sweep_probability_by_label: "negatives" and "positives", each `metrics.column_spread`).
    Returns PNG bytes."""
    fig = new_figure((6.4, 4.8))
    ax = fig.add_subplot(1, 1, 1)
    xs = np.asarray(deltas, np.float64)
    for key, label, colour in DELTA_GROUPS:
        group = by_label.get(key) or {}
        if not group.get("count"):
            continue
        ax.fill_between(xs, group["q25"], group["q75"], color=colour, alpha=0.2, linewidth=0)
        ax.plot(xs, group["mean"], marker="o", markersize=3, color=colour,
                label=f"{label}: mean of {group['count']}, band 25-75 %")
    ax.axhline(0.5, color="grey", linestyle=":", linewidth=1, label="decision P = 0.5")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("δ (the sweep runs from −δ0 to +δ0)")
    ax.set_ylabel(f"P({attr}) by the attribute classifier")
    ax.set_title(f"{attr}: the classifier's P against δ, G(x, δ) of test images", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), fontsize=8, frameon=False)  # off the curves
    return png_bytes(fig)
