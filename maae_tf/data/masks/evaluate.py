"""Face + hair IoU of each mask source against hand-made CelebAMask-HQ label maps.

    python -m maae_tf.data.masks.evaluate --celebamask_hq=DIR \
        [--sources=celebamask_hq,segmenter,landmarks] [--frame=aligned|native] \
        [--scale=1] [--landmarks_file=FILE] [--classes=1-15] [--repeats=3] [--out=DIR] [--fetch]

The folder holds photos `N.jpg` and their 19-class label maps `N.png` (any size; the map is
taken to frame the photo). Reference foreground = the map's classes `--classes` (face + hair,
1-15).

Sources see what dataset preparation gives them. CelebA-HQ photos are not in CelebA's aligned
178×218 frame and come without landmarks, so by default (`--frame=aligned`) each photo is brought
into that frame: dlib's 68-point landmarks (`maae_tf.data.faces.DlibDetector`, largest face; or the 5
points of `--landmarks_file`, lines `N.jpg x1 y1 ... x5 y5` in photo pixels) give CelebA's 5 points and
the similarity CelebA's own alignment uses (`Face.to_aligned`: eyes and mouth centre onto the
authors' targets); the photo is area-downscaled and warped into 178×218, the label map warped
with nearest neighbour, the 5 points mapped along. IoU counts only the aligned pixels that the
photo covers (a CelebA-HQ photo covers about x 7-170, y 34-195 of the frame, close to the
training crop). `--scale=0.5` makes that frame 89×109, the size of CelebA's photos at half size,
where dlib needs the `dlib-upsampled` or `template` ways of the segmenter more often.
`--frame=native` runs the sources on the photo itself with the 5 points in photo pixels and
compares at the photo's size.

`celebamask_hq` is run with DIR = the folder itself, on the photo (its maps frame the photo, not
the aligned frame) and its mask warped like the reference: a self-check of lookup, class
selection and resizing, ≈ 1 by construction. `files` needs a dataset folder and is not
evaluated here.

A source that gives no mask for a photo (MaskUnavailable) scores IoU 0 there, and says why.
Prints one line per photo, the time per image of each source (median of `--repeats` calls, the
source's own work only: detection and alignment excluded) and, last, `mean_iou SOURCE=<value>`
per source. Exit status 2 on a bad folder or flag, 1 when a requested source could not be built
(e.g. the segmentation model is not cached: `--fetch` or `python -m maae_tf.data.masks.segmenter --fetch`).
"""

from __future__ import annotations

import glob
import os
import sys
import time

import cv2
import numpy as np

from maae_tf.data.faces import ALIGNED_H, ALIGNED_W, DlibDetector, celeba_face, compose, scale_of
from maae_tf.data.faces import apply as apply_t
from maae_tf.data.masks import MaskUnavailable, check_mask, make_source
from maae_tf.data.masks.celebamask_hq import FACE_HAIR, CelebAMaskHQSource, foreground_of, parse_classes
from maae_tf.data.masks.segmenter import fetch_segmenter_model
from maae_tf.files import read_image, write_image

DEFAULT_SOURCES = ("celebamask_hq", "segmenter", "landmarks")


def iou(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Intersection over union of two boolean foregrounds, over `valid` pixels only (all when
    None). Both empty: 1.0 (they agree)."""
    pred, ref = np.asarray(pred, bool), np.asarray(ref, bool)
    if pred.shape != ref.shape:
        raise ValueError(f"shapes differ: {pred.shape} vs {ref.shape}")
    if valid is not None:
        valid = np.asarray(valid, bool)
        pred, ref = pred & valid, ref & valid
    union = np.count_nonzero(pred | ref)
    return 1.0 if union == 0 else np.count_nonzero(pred & ref) / union


def find_pairs(folder: str) -> list[tuple[str, str, str]]:
    """(stem, photo path, label-map path) of every `N.jpg` with an `N.png` beside it, in numeric
    (then name) order."""
    out = []
    for photo in glob.glob(os.path.join(folder, "*.jpg")):
        stem = os.path.splitext(os.path.basename(photo))[0]
        label = os.path.join(folder, stem + ".png")
        if os.path.isfile(label):
            out.append((stem, photo, label))
    return sorted(out, key=lambda t: (not t[0].isdigit(), int(t[0]) if t[0].isdigit() else 0, t[0]))


def read_landmarks(path: str) -> dict[str, np.ndarray]:
    """`N.jpg x1 y1 ... x5 y5` lines (CelebA's landmark list; header lines are skipped) → {stem: [5, 2]}."""
    out = {}
    with open(path) as f:
        for line in f:
            parts = line.split()
            if len(parts) != 11:
                continue
            try:
                pts = np.array([float(v) for v in parts[1:]], np.float32).reshape(5, 2)
            except ValueError:
                continue
            out[os.path.splitext(parts[0])[0]] = pts
    return out


def _pixel_scale(src_w, src_h, dst_w, dst_h) -> np.ndarray:
    """2×3 transform from pixel centres of a src_w×src_h image to those of dst_w×dst_h covering the same area."""
    sx, sy = dst_w / src_w, dst_h / src_h
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])


class Sample:
    """One photo as the sources see it: `image`, `landmarks` (5 points, or None), the reference
    foreground `ref`, the pixels that count `valid`, and `to_frame(mask_of_photo)` bringing a
    photo-sized boolean mask into the same frame."""

    def __init__(self, stem, photo, label_map, classes, points5, frame, scale=1.0):
        self.stem, self.name, self.photo = stem, stem + ".jpg", photo
        h, w = photo.shape[:2]
        fg = foreground_of(label_map, classes).astype(np.uint8)
        map_to_photo = _pixel_scale(label_map.shape[1], label_map.shape[0], w, h)
        if frame == "native":
            self.image, self.landmarks = photo, points5
            self.ref = cv2.resize(fg, (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
            self.valid = np.ones((h, w), bool)
            self.m = None
            return
        if points5 is None:
            raise MaskUnavailable(f"{self.name}: no face found to align")
        m = celeba_face(np.asarray(points5, np.float64).ravel()).to_aligned()  # photo → aligned
        size = (max(1, round(ALIGNED_W * scale)), max(1, round(ALIGNED_H * scale)))
        if size != (ALIGNED_W, ALIGNED_H):  # the aligned frame at another size, e.g. the dev set's half
            m = compose(_pixel_scale(ALIGNED_W, ALIGNED_H, *size), m)
        self.m = m
        s = scale_of(m)
        src, to_aligned = photo, m
        if s < 1.0:  # area-downscale first so the warp does not alias
            sw, sh = max(1, round(w * s)), max(1, round(h * s))
            src = cv2.resize(photo, (sw, sh), interpolation=cv2.INTER_AREA)
            to_aligned = compose(m, _pixel_scale(sw, sh, w, h))
        self.image = cv2.warpAffine(src, to_aligned, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        map_m = compose(m, map_to_photo)
        self.ref = cv2.warpAffine(fg, map_m, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
        ones = np.ones(label_map.shape, np.uint8)
        self.valid = cv2.warpAffine(ones, map_m, size, flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
        self.landmarks = apply_t(m, points5).astype(np.float32)

    def to_frame(self, photo_fg: np.ndarray) -> np.ndarray:
        if self.m is None:
            return photo_fg
        return cv2.warpAffine(photo_fg.astype(np.uint8), self.m, (self.image.shape[1], self.image.shape[0]),
                              flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)


def run_source(source, kind: str, sample: Sample, repeats: int):
    """(foreground in the sample's frame, median seconds per call); MaskUnavailable passes through."""
    on_photo = kind == "celebamask_hq"
    image = sample.photo if on_photo else sample.image
    marks = None if on_photo else sample.landmarks
    times, mask = [], None
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        mask = source(image, name=sample.name, landmarks=marks)
        times.append(time.perf_counter() - t)
    mask = check_mask(mask, image, kind, sample.name)
    fg = mask < 128
    return (sample.to_frame(fg) if on_photo else fg), float(np.median(times))


def evaluate(folder: str, sources=DEFAULT_SOURCES, frame: str = "aligned", landmarks_file: str | None = None,
             classes=None, repeats: int = 3, out_dir: str | None = None, fetch: bool = False, out=print,
             scale: float = 1.0):
    """Runs the evaluation described in the module docstring; returns {source: mean IoU}."""
    classes = tuple(classes or FACE_HAIR)
    if frame not in ("aligned", "native"):
        raise ValueError(f"--frame must be aligned or native, not {frame!r}")
    if not 0 < scale <= 4 or (scale != 1.0 and frame != "aligned"):
        raise ValueError(f"--scale must be in (0, 4] and needs --frame=aligned, got {scale} with {frame}")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder}: no such folder")
    pairs = find_pairs(folder)
    if not pairs:
        raise FileNotFoundError(f"{folder}: no N.jpg with an N.png label map beside it")
    given = read_landmarks(landmarks_file) if landmarks_file else None

    built, failed = {}, {}
    for spec in sources:
        kind = spec.partition(":")[0]
        try:
            if kind == "celebamask_hq":
                built[spec] = CelebAMaskHQSource(folder, classes)
            else:
                if kind == "segmenter" and fetch:
                    fetch_segmenter_model()
                built[spec] = make_source(spec, folder)
        except (FileNotFoundError, RuntimeError, ValueError) as e:
            failed[spec] = str(e)
            out(f"{spec}: not evaluated: {e}")

    detector = None
    scores = {s: [] for s in built}
    seconds = {s: [] for s in built}
    for stem, photo_path, label_path in pairs:
        photo = read_image(photo_path)
        label_map = cv2.imread(label_path, cv2.IMREAD_GRAYSCALE)
        if label_map is None:
            raise ValueError(f"{label_path}: not a readable PNG")
        if given is not None:
            points5 = given.get(stem)
            how = "given" if points5 is not None else "missing from --landmarks_file"
        else:
            detector = detector or DlibDetector()
            faces = detector(photo)
            face = max(faces, key=lambda f: f.box[2] - f.box[0]) if faces else None
            points5 = None if face is None else face.landmarks5
            how = "dlib" if face is not None else "dlib found no face"
        try:
            sample = Sample(stem, photo, label_map, classes, points5, frame, scale)
        except MaskUnavailable as e:
            out(f"{stem}.jpg  skipped: {e} ({how})")
            for s in built:
                scores[s].append(0.0)
            continue
        cells = []
        for spec, source in built.items():
            try:
                fg, sec = run_source(source, spec.partition(":")[0], sample, repeats)
                seconds[spec].append(sec)
                value = iou(fg, sample.ref, sample.valid)
                cells.append(f"{spec}={value:.4f}")
            except MaskUnavailable as e:
                value, fg = 0.0, None
                cells.append(f"{spec}=0 (unavailable: {e})")
            scores[spec].append(value)
            if out_dir and fg is not None:
                _write_overlay(out_dir, stem, spec, sample, fg)
        out(f"{stem}.jpg  " + "  ".join(cells) + f"  [{frame} {sample.image.shape[1]}x{sample.image.shape[0]}, landmarks {how}]")
    out("ms/image " + "  ".join(f"{s}={1000 * np.mean(v):.2f}" if v else f"{s}=n/a" for s, v in seconds.items()))
    means = {s: float(np.mean(v)) for s, v in scores.items()}
    for s, v in means.items():
        out(f"mean_iou {s}={v:.4f}")
    return means, failed


def _write_overlay(out_dir, stem, spec, sample, fg):
    """image | reference | prediction, red = missed, blue = extra, grey = outside the valid area."""
    ref, valid = sample.ref, sample.valid
    diff = np.zeros(ref.shape + (3,), np.uint8)
    diff[ref & fg] = 255
    diff[ref & ~fg] = (255, 0, 0)
    diff[~ref & fg] = (0, 0, 255)
    diff[~valid] = 96
    refv = np.repeat((ref * 255).astype(np.uint8)[:, :, None], 3, 2)
    img = sample.image[:, :, :3]
    if img.shape[0] > 512:
        f = 512 / img.shape[0]
        img, refv, diff = (cv2.resize(x, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) for x in (img, refv, diff))
    write_image(os.path.join(out_dir, f"{stem}_{spec.replace(':', '_').replace('/', '_')}.png"),
                np.concatenate([img, refv, diff], 1))


def evaluate_command(folder: str, sources: str, frame: str, landmarks_file: str | None, classes: str,
                     repeats: int, out_dir: str | None, fetch: bool, scale: float) -> int:
    """`python -m maae_tf.data.masks.evaluate`: `evaluate` of the comma-separated `sources` (a
    source's options after ':' use '+' instead of ',') and the `classes` range; the exit code: 0,
    1 when a source could not be evaluated, 2 (after one `error:` line) on a bad input."""
    specs = [s.strip().replace("+", ",") for s in sources.split(",") if s.strip()]
    try:
        _, failed = evaluate(folder, specs, frame, landmarks_file, parse_classes(classes), repeats, out_dir, fetch,
                             scale=scale)
    except (FileNotFoundError, ValueError, RuntimeError) as e:  # RuntimeError: dlib missing
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":  # the documented `python -m maae_tf.data.masks.evaluate`: the command is maae_tf/evaluate_masks.py
    import runpy

    runpy.run_module("maae_tf.evaluate_masks", run_name="__main__", alter_sys=True)
