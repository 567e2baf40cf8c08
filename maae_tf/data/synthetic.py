"""A procedural synthetic face set written in the exact CelebA release layout.

Every code path that reads CelebA runs on it without the real data, and a small GAN learns its
attribute edits in minutes on a CPU. `python -m maae_tf.data.synthetic --out DIR --num_images N
[--seed S] [--workers W]`, or from Python `build(out_dir, num, seed, workers)` /
`ensure(out_dir, num, seed)`.

Files in DIR (CelebA's names and formats):
  img_align_celeba/000001.jpg ...      178x218 RGB JPEG (quality 95), the aligned-image geometry
  list_attr_celeba.txt                 count, the 40 names, rows `000001.jpg -1  1 ...`
  list_eval_partition.txt              `000001.jpg 0`: 0 train / 1 val / 2 test (~80/10/10)
  identity_CelebA.txt                  `000001.jpg 17`: 1-based identity ids (~num/8 of them)
  list_landmarks_align_celeba.txt      count, 10 column names, the drawn eye/nose/mouth points
  background_masks/000001.png          uint8 178x218: 255 background, 0 foreground (face skin,
                                       ears, eyes, brows, nose, mouth, hair, glasses; neck and
                                       clothes are background, as in CelebAMask-HQ)
  synthetic_info.json                  {num, seed, version}: marks the folder as a synthetic set

Drawn attributes (labels are exactly what is drawn, sampled per image independently of the
identity and of each other): Mouth_Slightly_Open (~50%), Smiling (~40%), one of
Black/Blond/Brown/Gray_Hair (25/30/25/20%), Eyeglasses (~30%), Pale_Skin (~30%), Bangs (~35%).
Male belongs to the identity (short vs long hair, jaw). No_Beard and Young are +1 everywhere; the
rest are -1. Identities fix face shape, eye spacing/size/colour, base skin tone, nose, hair style.

Determinism: image i (1-based) draws from `np.random.default_rng([seed, i])`, identity k from
`np.random.default_rng([seed, IDENTITY_TAG, k])`; files are byte-identical for any `workers`.
"""

from __future__ import annotations

import glob
import json
import math
import multiprocessing
import os
import shutil
import sys
import time
import zlib

import cv2
import numpy as np
from absl import logging

from maae_tf import attributes

VERSION = 1
WIDTH, HEIGHT = 178, 218  # CelebA's aligned images
IMAGE_DIR = "img_align_celeba"
MASK_DIR = "background_masks"
ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IDENTITY_FILE = "identity_CelebA.txt"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
INFO_FILE = "synthetic_info.json"
LANDMARK_NAMES = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
                  "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")
IMAGES_PER_IDENTITY = 8
IDENTITY_TAG = zlib.crc32(b"identity")
ASSIGN_TAG = zlib.crc32(b"assign")

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
HAIR_PROBS = (0.25, 0.30, 0.25, 0.20)
PROBS = {"Mouth_Slightly_Open": 0.5, "Smiling": 0.4, "Eyeglasses": 0.3, "Pale_Skin": 0.3,
         "Bangs": 0.35}
ALWAYS_POSITIVE = ("No_Beard", "Young")

# Label map values while drawing (the mask only keeps background vs the rest).
_BG, _SKIN, _HAIR, _PART = 0, 1, 2, 3
_SHIFT = 4  # cv2 sub-pixel bits
_ONE = 1 << _SHIFT

_LIGHT_SKIN = np.array([236, 196, 166], np.float32)  # RGB
_DARK_SKIN = np.array([108, 70, 50], np.float32)
_PALE = np.array([250, 238, 232], np.float32)
_EYE_COLOURS = np.array([[95, 58, 30], [45, 28, 18], [70, 112, 165], [78, 118, 72],
                         [112, 122, 128]], np.float32)

_YY, _XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
_YN, _XN = _YY / HEIGHT, _XX / WIDTH


# --------------------------------------------------------------------------------------------
# identities and per-image parameters


def identity_params(seed: int, k: int) -> dict:
    """The drawn traits of identity k (1-based), from rng (seed, IDENTITY_TAG, k)."""
    r = np.random.default_rng([seed, IDENTITY_TAG, k])
    male = bool(r.random() < 0.5)
    nose = r.uniform(0.16, 0.30)
    return {
        "male": male,
        "a": r.uniform(31.0, 37.0) if male else r.uniform(30.0, 35.0),  # face half width
        "b": r.uniform(41.0, 47.0),  # face half height
        "jaw": r.uniform(2.2, 2.9) if male else r.uniform(1.75, 2.3),  # superellipse exponent
        "eye_sp": r.uniform(0.48, 0.58),
        "eye_w": r.uniform(5.8, 7.6),
        "eye_ratio": r.uniform(0.45, 0.6),
        "eye_colour": _EYE_COLOURS[r.integers(len(_EYE_COLOURS))].tolist(),
        "skin_t": float(r.random()),
        "nose": nose,
        "nose_w": r.uniform(7.0, 11.0),
        "mouth": max(r.uniform(0.52, 0.6), nose + 0.24),
        "mouth_w": r.uniform(0.42, 0.52),
        "brow_gap": r.uniform(0.17, 0.22),
        "brow_th": r.uniform(2.8, 4.0) if male else r.uniform(2.0, 3.0),
        "hair_vol": r.uniform(1.06, 1.14) if male else r.uniform(1.1, 1.22),
        "hair_len": r.uniform(0.0, 0.25) if male else r.uniform(0.55, 1.0),
        "hairline": r.uniform(0.74, 0.82),
        "parting": r.uniform(-0.35, 0.35),
        "lip": r.uniform(0.35, 0.55),
    }


def identity_assignment(num: int, seed: int) -> np.ndarray:
    """1-based identity id of each image: ~num/8 identities, each with ~8 images."""
    k = max(1, int(round(num / IMAGES_PER_IDENTITY)))
    ids = np.arange(num) % k + 1
    np.random.default_rng([seed, ASSIGN_TAG, num]).shuffle(ids)
    return ids


def _hair_colour(r: np.random.Generator, name: str) -> np.ndarray:
    if name == "Black_Hair":
        v = r.uniform(16, 38)
        c = (v + r.uniform(0, 7), v, v - r.uniform(0, 5))
    elif name == "Brown_Hair":
        v = r.uniform(95, 135)
        c = (v, v * r.uniform(0.58, 0.68), v * r.uniform(0.32, 0.42))
    elif name == "Blond_Hair":
        v = r.uniform(205, 238)
        c = (v, v * r.uniform(0.82, 0.9), v * r.uniform(0.5, 0.62))
    else:  # Gray_Hair
        v = r.uniform(150, 195)
        c = (v, v + r.uniform(-3, 3), v + r.uniform(0, 9))
    return np.array(c, np.float32)


# --------------------------------------------------------------------------------------------
# drawing


def _pts(xy) -> np.ndarray:
    return np.round(np.asarray(xy, np.float64) * _ONE).astype(np.int32).reshape(-1, 1, 2)


def _c(colour) -> tuple:
    return tuple(min(255.0, max(0.0, float(v))) for v in colour)


class _Canvas:
    """An RGB uint8 image plus a label map drawn with the same shapes (the map without AA)."""

    def __init__(self, image: np.ndarray):
        self.img = image
        self.lab = np.zeros(image.shape[:2], np.uint8)

    def poly(self, xy, colour, label):
        p = [_pts(xy)]
        cv2.fillPoly(self.img, p, _c(colour), cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.fillPoly(self.lab, p, label, cv2.LINE_8, _SHIFT)

    def line(self, xy, colour, thickness, label=None, closed=False):
        p = [_pts(xy)]
        t = max(1, int(round(thickness)))
        cv2.polylines(self.img, p, closed, _c(colour), t, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.polylines(self.lab, p, closed, label, t, cv2.LINE_8, _SHIFT)

    def ellipse(self, cx, cy, ax, ay, colour, label, angle=0.0):
        centre = (int(round(cx * _ONE)), int(round(cy * _ONE)))
        axes = (int(round(ax * _ONE)), int(round(ay * _ONE)))
        cv2.ellipse(self.img, centre, axes, angle, 0, 360, _c(colour), -1, cv2.LINE_AA, _SHIFT)
        if label is not None:
            cv2.ellipse(self.lab, centre, axes, angle, 0, 360, label, -1, cv2.LINE_8, _SHIFT)


def _ellipse_pts(cx, cy, ax, ay, t0, t1, n=24):
    t = np.linspace(t0, t1, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def _background(r: np.random.Generator) -> np.ndarray:
    """A float32 RGB background: gradients, textures, clutter or a mix, in random colours."""
    kind = r.integers(7)
    c0, c1 = r.uniform(0, 255, 3).astype(np.float32), r.uniform(0, 255, 3).astype(np.float32)

    def linear():
        ang = r.uniform(0, 2 * np.pi)
        t = np.cos(ang) * _XN + np.sin(ang) * _YN
        return (t - t.min()) / (t.max() - t.min() + 1e-6)

    def radial():
        x0, y0, s = r.uniform(-0.2, 1.2), r.uniform(-0.2, 1.2), r.uniform(0.5, 1.2)
        return np.clip(np.sqrt((_XN - x0) ** 2 + (_YN - y0) ** 2) / s, 0, 1)

    def blotches():
        small = r.random((int(r.integers(2, 12)), int(r.integers(2, 12))), dtype=np.float32)
        return np.clip(cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC), 0, 1)

    def stripes():
        ang, f = r.uniform(0, np.pi), r.uniform(3, 14)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (np.cos(ang) * _XN + np.sin(ang) * _YN)
                               + r.uniform(0, 6.3))
        return (t > 0.5).astype(np.float32) * 0.8 + 0.2 * t if r.random() < 0.5 else t

    def checker():
        cell = r.uniform(8, 40)
        ox, oy = r.uniform(0, cell, 2)
        return ((np.floor((_XX + ox) / cell) + np.floor((_YY + oy) / cell)) % 2).astype(
            np.float32)

    def noise():
        return r.random((HEIGHT, WIDTH), dtype=np.float32)

    if kind == 0:
        t = linear()
    elif kind == 1:
        t = radial()
    elif kind == 2:
        t = blotches()
    elif kind == 3:
        t = stripes()
    elif kind == 4:
        t = checker()
    elif kind == 5:  # clutter on a gradient
        t = linear()
    else:  # mixed
        t = 0.5 * [linear, radial][r.integers(2)]() + 0.5 * [blotches, stripes, checker, noise][
            r.integers(4)]()
    img = c0 + (c1 - c0) * t[..., None]
    if kind == 2 and r.random() < 0.5:  # colour blotches
        img = img + (blotches()[..., None] - 0.5) * r.uniform(-80, 80, 3).astype(np.float32)
    if kind >= 5:
        img = np.clip(img, 0, 255).astype(np.uint8)
        for _ in range(int(r.integers(4, 16))):
            col = _c(r.uniform(0, 255, 3))
            shape = r.integers(4)
            x, y = r.uniform(-20, WIDTH + 20), r.uniform(-20, HEIGHT + 20)
            s = r.uniform(6, 45)
            if shape == 0:
                cv2.circle(img, (int(x * _ONE), int(y * _ONE)), int(s * _ONE), col, -1,
                           cv2.LINE_AA, _SHIFT)
            elif shape == 1:
                w, h = s, r.uniform(6, 45)
                cv2.fillPoly(img, [_pts([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])], col,
                             cv2.LINE_AA, _SHIFT)
            elif shape == 2:
                ang = r.uniform(0, 2 * np.pi)
                cv2.line(img, (int(x * _ONE), int(y * _ONE)),
                         (int((x + 4 * s * np.cos(ang)) * _ONE),
                          int((y + 4 * s * np.sin(ang)) * _ONE)),
                         col, int(r.integers(1, 5)), cv2.LINE_AA, _SHIFT)
            else:
                n = int(r.integers(3, 7))
                ang = np.sort(r.uniform(0, 2 * np.pi, n))
                rad = s * r.uniform(0.5, 1.0, n)
                cv2.fillPoly(img, [_pts(np.stack([x + rad * np.cos(ang),
                                                  y + rad * np.sin(ang)], 1))],
                             col, cv2.LINE_AA, _SHIFT)
        return img.astype(np.float32)
    return img


_NOISE = []


def _noise_bank() -> np.ndarray:
    """Fixed unit Gaussian noise, twice the image size; each image adds a crop at a random
    offset (cheaper than drawing fresh noise per image, and just as deterministic)."""
    if not _NOISE:
        _NOISE.append(np.random.default_rng(zlib.crc32(b"sensor-noise")).standard_normal(
            (2 * HEIGHT, 2 * WIDTH, 3), dtype=np.float32))
    return _NOISE[0]


def render(seed: int, i: int, ident: dict):
    """Draws image i (1-based). Returns (rgb uint8 HxWx3, mask uint8 HxW (255 = background),
    {attribute: ±1}, landmarks (10 ints), partition)."""
    r = np.random.default_rng([seed, i])
    u = r.random()
    partition = 0 if u < 0.8 else (1 if u < 0.9 else 2)
    on = {name: bool(r.random() < p) for name, p in PROBS.items()}
    hair_name = HAIR_COLOURS[int(r.choice(len(HAIR_COLOURS), p=HAIR_PROBS))]
    mouth_open, smiling = on["Mouth_Slightly_Open"], on["Smiling"]

    # --- geometry (jitter of position and scale per image) ---
    sc = r.uniform(0.95, 1.05)
    cx, cy = 89.0 + r.uniform(-4, 4), 119.0 + r.uniform(-4, 4)
    a, b = ident["a"] * sc, ident["b"] * sc
    eye_y = cy - 0.2 * b
    eye_dx = ident["eye_sp"] * a
    ew = ident["eye_w"] * sc
    eh = ew * ident["eye_ratio"]
    brow_y = eye_y - ident["brow_gap"] * b
    nose_y = cy + ident["nose"] * b
    mouth_y = cy + ident["mouth"] * b
    mw = ident["mouth_w"] * a * (1.12 if smiling else 1.0)
    lift = r.uniform(6.5, 8.5) * sc if smiling else r.uniform(-1.0, 0.5)  # corners up by this

    # --- colours ---
    skin = _LIGHT_SKIN + (_DARK_SKIN - _LIGHT_SKIN) * ident["skin_t"] ** 1.15
    skin = skin + r.uniform(-6, 6, 3).astype(np.float32)
    if on["Pale_Skin"]:
        skin = skin + (_PALE - skin) * r.uniform(0.6, 0.7)
        skin = skin.mean() + (skin - skin.mean()) * 0.75  # paler = also less saturated
    hair = _hair_colour(r, hair_name)
    brow = hair * 0.55 + 8 if hair.mean() > 60 else hair
    lip = skin + (np.array([165, 62, 72], np.float32) - skin) * ident["lip"]
    clothes = r.uniform(0, 255, 3).astype(np.float32)

    c = _Canvas(np.clip(_background(r), 0, 255).astype(np.uint8))

    # --- back hair (behind the head, long hair down to the shoulders) ---
    hv = ident["hair_vol"] * r.uniform(0.98, 1.02)
    sk_cy, sk_ax, sk_ay = cy - 0.12 * b, a * hv, b * (0.96 + 0.2 * (hv - 1))
    if ident["hair_len"] > 0.4:
        y_bot = cy + b * (0.5 + 1.2 * ident["hair_len"])
        top = _ellipse_pts(cx, sk_cy, sk_ax, sk_ay, np.pi, 2 * np.pi)
        xs = np.linspace(cx + sk_ax * 1.06, cx - sk_ax * 1.06, 9)
        ys = y_bot + r.uniform(-4, 4, 9)
        back = np.concatenate([top, [(cx + sk_ax * 1.06, sk_cy + 0.3 * b)],
                               np.stack([xs, ys], 1), [(cx - sk_ax * 1.06, sk_cy + 0.3 * b)]])
        c.poly(back, hair * 0.85, _HAIR)
    else:
        c.ellipse(cx, sk_cy, sk_ax, sk_ay, hair * 0.9, _HAIR)

    # --- neck and clothes (background in the mask) ---
    neck = skin * 0.8
    c.poly([(cx - 0.42 * a, cy + 0.4 * b), (cx + 0.42 * a, cy + 0.4 * b),
            (cx + 0.5 * a, HEIGHT + 2), (cx - 0.5 * a, HEIGHT + 2)], neck, _BG)
    sh_cx, sh_top = cx + r.uniform(-3, 3), cy + b + r.uniform(10, 20)
    sh_ax = r.uniform(75, 92)
    c.ellipse(sh_cx, sh_top + 50, sh_ax, 50, clothes, _BG)
    c.poly([(cx - 0.5 * a, sh_top - 6), (cx + 0.5 * a, sh_top - 6),
            (cx, sh_top + r.uniform(8, 26))], neck, _BG)

    # --- ears, long side locks, face ---
    for sgn in (-1, 1) if ident["hair_len"] <= 0.4 else ():  # long hair hides the ears
        ex, ey = cx + sgn * a * 0.97, eye_y + 0.14 * b
        c.ellipse(ex, ey, 0.19 * a, 0.28 * b, skin * 0.9, _SKIN)
        c.ellipse(ex + sgn * 1.5, ey, 0.08 * a, 0.16 * b, skin * 0.72, _SKIN)
    if ident["hair_len"] > 0.4:
        for sgn in (-1, 1):
            lock = [(cx + sgn * sk_ax * 1.01, sk_cy), (cx + sgn * sk_ax * 1.07, y_bot),
                    (cx + sgn * 0.62 * a, y_bot - 4), (cx + sgn * 0.7 * a, sk_cy)]
            c.poly(lock, hair, _HAIR)
    t = np.linspace(0, 2 * np.pi, 73)[:-1]
    ct, st = np.cos(t), np.sin(t)
    e = np.where(st > 0, 2.0 / ident["jaw"], 1.0)
    face = np.stack([cx + a * np.sign(ct) * np.abs(ct) ** e,
                     cy + b * np.sign(st) * np.abs(st) ** e], 1)
    c.poly(face, skin, _SKIN)

    # --- nose ---
    nw = ident["nose_w"] * sc
    c.line([(cx - 0.5, eye_y + 4), (cx - 1.5, nose_y - 5)], skin * 0.9, 1)
    c.line(_ellipse_pts(cx, nose_y - 1.5, nw * 0.5, 3.0, 0.15 * np.pi, 0.85 * np.pi, 9),
           skin * 0.72, 1.5)
    for sgn in (-1, 1):
        c.ellipse(cx + sgn * nw * 0.27, nose_y + 0.8, 1.9, 1.1, skin * 0.42, None)

    # --- eyes and brows ---
    for sgn in (-1, 1):
        ex = cx + sgn * eye_dx
        c.ellipse(ex, eye_y, ew, eh, np.array([236, 233, 228]) * r.uniform(0.9, 1.0), _PART)
        c.ellipse(ex, eye_y, eh * 0.95, eh * 0.95, ident["eye_colour"], _PART)
        c.ellipse(ex, eye_y, eh * 0.42, eh * 0.42, (12, 10, 10), _PART)
        c.line(_ellipse_pts(ex, eye_y + 0.3, ew * 1.04, eh * 1.15, 1.05 * np.pi, 1.95 * np.pi,
                            11), (35, 22, 20), 2, _PART)
        bx = np.linspace(ex - sgn * ew * 1.1, ex + sgn * ew * 1.35, 7)
        by = brow_y - 2.2 * np.sin(np.linspace(0.15, 0.95 * np.pi, 7))
        c.line(np.stack([bx, by], 1), brow, ident["brow_th"] * sc, _PART)

    # --- mouth ---
    tt = np.linspace(-1, 1, 17)
    mx = cx + mw * tt
    mid = mouth_y - lift * tt ** 2
    bulge = 1 - tt ** 2
    if mouth_open:
        ou, ol = r.uniform(2.0, 3.5) * sc, r.uniform(8.0, 10.5) * sc
        up, lo = mid - ou * bulge, mid + ol * bulge ** 0.8
        c.poly(np.concatenate([np.stack([mx, up - 2.2 * bulge ** 0.5], 1),
                               np.stack([mx, lo + 2.8 * bulge ** 0.5], 1)[::-1]]), lip, _PART)
        c.poly(np.concatenate([np.stack([mx, up], 1), np.stack([mx, lo], 1)[::-1]]),
               np.array([48, 16, 22]) * r.uniform(0.8, 1.2), _PART)
        tk = np.abs(tt) < 0.72
        c.poly(np.concatenate([np.stack([mx[tk], up[tk]], 1),
                               np.stack([mx[tk], up[tk] + 2.6 * bulge[tk]], 1)[::-1]]),
               np.array([232, 226, 214]) * r.uniform(0.85, 1.0), _PART)
    else:
        c.poly(np.concatenate([np.stack([mx, mid - 2.4 * bulge ** 0.6], 1),
                               np.stack([mx, mid + 3.0 * bulge ** 0.6], 1)[::-1]]), lip, _PART)
        c.line(np.stack([mx, mid], 1), lip * 0.45, 1.2, _PART)
    if smiling:  # nasolabial folds
        for sgn in (-1, 1):
            fx = cx + sgn * (nw * 0.6 + (mw + 3 - nw * 0.6) * np.linspace(0, 1, 6) ** 0.7)
            fy = np.linspace(nose_y - 2, mouth_y + 2, 6)
            c.line(np.stack([fx, fy], 1), skin * 0.8, 1.3)

    # --- front hair: a cap down to the hairline, or bangs over the upper forehead ---
    temple_y = cy - 0.3 * b
    dt = math.asin(min(1.0, (sk_cy - temple_y) / sk_ay))
    arc = _ellipse_pts(cx, sk_cy, sk_ax, sk_ay, np.pi + dt, 2 * np.pi - dt, 25)
    part_x = cx + ident["parting"] * a
    if on["Bangs"]:
        depth = cy - r.uniform(0.46, 0.53) * b
        n = 15
        fx = np.linspace(cx + 0.95 * a, cx - 0.95 * a, n)
        fy = depth + np.where(np.arange(n) % 2 == 0, -2.5, 2.5) + r.uniform(-1, 1, n)
        fy = fy + 0.06 * b * ((fx - cx) / a) ** 2 * -1
        line = np.concatenate([[(cx + a * 1.0, temple_y + 2)], np.stack([fx, fy], 1),
                               [(cx - a * 1.0, temple_y + 2)]])
    else:
        hl = cy - ident["hairline"] * b
        xs = np.array([cx + 0.98 * a, cx + 0.75 * a, part_x + 0.3 * a, part_x, part_x - 0.3 * a,
                       cx - 0.75 * a, cx - 0.98 * a])
        ys = np.array([temple_y, hl + 0.2 * b, hl + 0.02 * b, hl + 0.05 * b, hl + 0.02 * b,
                       hl + 0.2 * b, temple_y])
        line = np.stack([xs, ys], 1)
    c.poly(np.concatenate([arc, line]), hair, _HAIR)

    # --- eyeglasses ---
    if on["Eyeglasses"]:
        rim = np.array([28, 24, 24]) * r.uniform(0.6, 1.8)
        rw, rh = ew + 5.5, eh + 5.5
        square = r.random() < 0.5
        for sgn in (-1, 1):
            ex = cx + sgn * eye_dx
            tt2 = np.linspace(0, 2 * np.pi, 41)[:-1]
            p = 2.0 / 4.0 if square else 1.0
            co, si = np.cos(tt2), np.sin(tt2)
            ring = np.stack([ex + rw * np.sign(co) * np.abs(co) ** p,
                             eye_y + 0.5 + rh * np.sign(si) * np.abs(si) ** p], 1)
            c.line(ring, rim, 3, _PART, closed=True)
            c.line([(ex + sgn * rw, eye_y - 1), (cx + sgn * a * 0.99, eye_y + 1)], rim, 2, _PART)
        c.line([(cx - eye_dx + rw, eye_y - 1), (cx, eye_y - 2.5), (cx + eye_dx - rw, eye_y - 1)],
               rim, 2, _PART)

    # --- shading, hair texture, light, blur, noise ---
    img = c.img.astype(np.float32)
    lab = c.lab
    ang = r.uniform(0, 2 * np.pi)
    mult = 1.0 + r.uniform(0.0, 0.12) * (np.cos(ang) * (_XN - 0.5) + np.sin(ang) * (_YN - 0.5))
    rr = ((_XX - cx) / (a * 1.1)) ** 2 + ((_YY - cy) / (b * 1.1)) ** 2
    mult = np.where(lab == _SKIN, mult * (1.06 - 0.14 * np.minimum(rr, 1.0)), mult)
    strands = r.standard_normal((6, 40), dtype=np.float32)
    strands = cv2.resize(strands, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    mult = np.where(lab == _HAIR, mult * (1.0 + 0.09 * strands), mult)
    img *= mult[..., None]
    sigma = r.uniform(0.0, 0.9)
    if sigma > 0.35:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    oy, ox = int(r.integers(HEIGHT)), int(r.integers(WIDTH))
    img += _noise_bank()[oy:oy + HEIGHT, ox:ox + WIDTH] * r.uniform(1.5, 5.0)
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    mask = np.where(lab == _BG, 255, 0).astype(np.uint8)

    labels = {name: -1 for name in attributes.CELEBA_ATTRIBUTES}
    for name in ALWAYS_POSITIVE:
        labels[name] = 1
    for name, v in on.items():
        labels[name] = 1 if v else -1
    labels[hair_name] = 1
    labels["Male"] = 1 if ident["male"] else -1
    corner_y = mouth_y - lift
    marks = [cx - eye_dx, eye_y, cx + eye_dx, eye_y, cx, nose_y, cx - mw, corner_y,
             cx + mw, corner_y]
    return rgb, mask, labels, [int(round(v)) for v in marks], partition


# --------------------------------------------------------------------------------------------
# writing


def _name(i: int) -> str:
    return f"{i:06d}"


def _work(task):
    seed, i, k, out = task
    rgb, mask, labels, marks, part = render(seed, i, _identity_cached(seed, k))
    ok1, jpg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    ok2, png = cv2.imencode(".png", mask)
    if not (ok1 and ok2):
        raise RuntimeError(f"could not encode image {i}")
    with open(os.path.join(out, IMAGE_DIR, _name(i) + ".jpg"), "wb") as f:
        f.write(jpg.tobytes())
    with open(os.path.join(out, MASK_DIR, _name(i) + ".png"), "wb") as f:
        f.write(png.tobytes())
    return i, [labels[n] for n in attributes.CELEBA_ATTRIBUTES], marks, part, k


_IDENTITIES: dict = {}


def _identity_cached(seed: int, k: int) -> dict:
    key = (seed, k)
    if key not in _IDENTITIES:
        if len(_IDENTITIES) > 4096:
            _IDENTITIES.clear()
        _IDENTITIES[key] = identity_params(seed, k)
    return _IDENTITIES[key]


def _init_worker():
    cv2.setNumThreads(1)


def _mp_context():
    # fork is fast and safe while TensorFlow is not loaded; once it is (a training run building
    # its data on first use), its threads make fork unsafe, so start fresh interpreters.
    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(out_dir: str) -> None:
    for path in glob.glob(glob.escape(out_dir) + ".tmp-*"):
        suffix = path.rsplit(".tmp-", 1)[1]
        if suffix.isdigit() and int(suffix) != os.getpid() and not _pid_alive(int(suffix)):
            logging.info("synthetic: removing %s, left by a killed build", path)
            shutil.rmtree(path, ignore_errors=True)


def _write_tables(tmp: str, num: int, rows: list) -> None:
    names = attributes.CELEBA_ATTRIBUTES
    with open(os.path.join(tmp, ATTR_FILE), "w", encoding="ascii") as f:
        f.write(f"{num}\n{' '.join(names)}\n")
        for i, attrs, _, _, _ in rows:
            f.write(f"{_name(i)}.jpg " + " ".join(f"{v:2d}" for v in attrs) + "\n")
    with open(os.path.join(tmp, PARTITION_FILE), "w", encoding="ascii") as f:
        for i, _, _, part, _ in rows:
            f.write(f"{_name(i)}.jpg {part}\n")
    with open(os.path.join(tmp, IDENTITY_FILE), "w", encoding="ascii") as f:
        for i, _, _, _, k in rows:
            f.write(f"{_name(i)}.jpg {k}\n")
    with open(os.path.join(tmp, LANDMARK_FILE), "w", encoding="ascii") as f:
        f.write(f"{num}\n{' '.join(LANDMARK_NAMES)}\n")
        for i, _, marks, _, _ in rows:
            f.write(f"{_name(i)}.jpg " + " ".join(f"{v:4d}" for v in marks) + "\n")


def build(out_dir: str, num: int, seed: int = 0, workers: int | None = None) -> str:
    """Writes `num` synthetic images and CelebA's tables into `out_dir`; returns its absolute path.

    Builds into `out_dir.tmp-<pid>` and renames it into place, so a killed build never leaves a
    set that looks complete. An existing synthetic set at `out_dir` (it has synthetic_info.json)
    or an empty folder is replaced; any other existing folder raises FileExistsError.
    """
    num, seed = int(num), int(seed)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(
            os.path.join(out_dir, INFO_FILE)):
        raise FileExistsError(f"{out_dir} exists and is not a synthetic set; not overwriting it")
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    _remove_stale_tmp(out_dir)
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, IMAGE_DIR))
    os.makedirs(os.path.join(tmp, MASK_DIR))
    workers = max(1, min(int(workers or os.cpu_count() or 1), num))
    ids = identity_assignment(num, seed)
    tasks = [(seed, i, int(ids[i - 1]), tmp) for i in range(1, num + 1)]
    logging.info("synthetic: building %d images (%d identities, seed %d) into %s with %d "
                 "worker(s)", num, int(ids.max()), seed, out_dir, workers)
    start = last = time.time()
    rows = []
    try:
        if workers == 1:
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                results = map(_work, tasks)
                for row in results:
                    rows.append(row)
                    last = _progress(len(rows), num, start, last)
            finally:
                cv2.setNumThreads(threads)
        else:
            chunk = max(1, min(32, num // (workers * 4)))
            with _mp_context().Pool(workers, initializer=_init_worker) as pool:
                for row in pool.imap(_work, tasks, chunksize=chunk):
                    rows.append(row)
                    last = _progress(len(rows), num, start, last)
        _write_tables(tmp, num, rows)
        with open(os.path.join(tmp, INFO_FILE), "w", encoding="ascii") as f:
            json.dump({"num": num, "seed": seed, "version": VERSION}, f)
            f.write("\n")
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.time() - start
    logging.info("synthetic: wrote %d images to %s in %.1f s (%.0f images/s)", num, out_dir,
                 elapsed, num / max(elapsed, 1e-9))
    return out_dir


def _progress(done: int, num: int, start: float, last: float) -> float:
    now = time.time()
    if now - last >= 2.0 or done == num:
        logging.info("synthetic: %d/%d images (%.0f images/s)", done, num,
                     done / max(now - start, 1e-9))
        return now
    return last


def _move_into_place(tmp: str, out_dir: str) -> None:
    old = None
    if os.path.isdir(out_dir):
        if os.listdir(out_dir):  # a previous synthetic set: swap it out, then delete it
            old = f"{out_dir}.old-{os.getpid()}"
            os.replace(out_dir, old)
        else:
            os.rmdir(out_dir)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if os.path.exists(os.path.join(out_dir, ATTR_FILE)):  # a concurrent build won
            logging.info("synthetic: %s was completed by another process", out_dir)
        else:
            raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def ensure(out_dir: str, num: int, seed: int = 0) -> str:
    """Builds the set unless `out_dir/list_attr_celeba.txt` exists; returns the absolute path."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(os.path.join(out_dir, ATTR_FILE)):
        info_path = os.path.join(out_dir, INFO_FILE)
        info = {}
        if os.path.exists(info_path):
            with open(info_path, encoding="ascii") as f:
                info = json.load(f)
        if info and (info.get("num"), info.get("seed")) != (int(num), int(seed)):
            logging.warning("synthetic: %s holds %s images with seed %s (asked for %d, seed %d); "
                            "using it as it is", out_dir, info.get("num"), info.get("seed"),
                            num, seed)
        else:
            logging.info("synthetic: %s already exists; not rebuilding", out_dir)
        return out_dir
    logging.info("synthetic: %s not found; building it", os.path.join(out_dir, ATTR_FILE))
    return build(out_dir, num, seed)


if __name__ == "__main__":  # the documented `python -m maae_tf.data.synthetic`: the command is maae_tf/synthetic.py
    import runpy

    runpy.run_module("maae_tf.synthetic", run_name="__main__", alter_sys=True)
