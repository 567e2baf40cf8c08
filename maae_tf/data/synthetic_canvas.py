"""The synthetic faces' drawing tools: a canvas that draws each shape on the image (antialiased)
and on a label map (hard edges) at once, cv2's sub-pixel coordinates, random backgrounds and a
fixed bank of sensor noise. The faces themselves are `maae_tf.data.synthetic_faces`'.
"""

from __future__ import annotations

import zlib

import cv2
import numpy as np

WIDTH, HEIGHT = 178, 218  # CelebA's aligned images
SHIFT = 4  # cv2 sub-pixel bits
ONE = 1 << SHIFT

YY, XX = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
YN, XN = YY / HEIGHT, XX / WIDTH


def points(xy) -> np.ndarray:
    """(x, y) points as cv2's fixed-point int32 polygon (SHIFT fractional bits)."""
    return np.round(np.asarray(xy, np.float64) * ONE).astype(np.int32).reshape(-1, 1, 2)


def clamp(colour) -> tuple:
    """A colour as cv2 takes it, each channel in [0, 255]."""
    return tuple(min(255.0, max(0.0, float(v))) for v in colour)


class Canvas:
    """An RGB uint8 image plus a label map drawn with the same shapes (the map without AA)."""

    def __init__(self, image: np.ndarray):
        self.img = image
        self.lab = np.zeros(image.shape[:2], np.uint8)

    def poly(self, xy, colour, label):
        p = [points(xy)]
        cv2.fillPoly(self.img, p, clamp(colour), cv2.LINE_AA, SHIFT)
        if label is not None:
            cv2.fillPoly(self.lab, p, label, cv2.LINE_8, SHIFT)

    def line(self, xy, colour, thickness, label=None, closed=False):
        p = [points(xy)]
        t = max(1, int(round(thickness)))
        cv2.polylines(self.img, p, closed, clamp(colour), t, cv2.LINE_AA, SHIFT)
        if label is not None:
            cv2.polylines(self.lab, p, closed, label, t, cv2.LINE_8, SHIFT)

    def ellipse(self, cx, cy, ax, ay, colour, label, angle=0.0):
        centre = (int(round(cx * ONE)), int(round(cy * ONE)))
        axes = (int(round(ax * ONE)), int(round(ay * ONE)))
        cv2.ellipse(self.img, centre, axes, angle, 0, 360, clamp(colour), -1, cv2.LINE_AA, SHIFT)
        if label is not None:
            cv2.ellipse(self.lab, centre, axes, angle, 0, 360, label, -1, cv2.LINE_8, SHIFT)


def arc_points(cx, cy, ax, ay, t0, t1, n=24):
    """n points of the ellipse (cx, cy, ax, ay) from angle t0 to t1."""
    t = np.linspace(t0, t1, n)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], 1)


def background(r: np.random.Generator) -> np.ndarray:
    """A float32 RGB background: gradients, textures, clutter or a mix, in random colours."""
    kind = r.integers(7)
    c0, c1 = r.uniform(0, 255, 3).astype(np.float32), r.uniform(0, 255, 3).astype(np.float32)

    def linear():
        ang = r.uniform(0, 2 * np.pi)
        t = np.cos(ang) * XN + np.sin(ang) * YN
        return (t - t.min()) / (t.max() - t.min() + 1e-6)

    def radial():
        x0, y0, s = r.uniform(-0.2, 1.2), r.uniform(-0.2, 1.2), r.uniform(0.5, 1.2)
        return np.clip(np.sqrt((XN - x0) ** 2 + (YN - y0) ** 2) / s, 0, 1)

    def blotches():
        small = r.random((int(r.integers(2, 12)), int(r.integers(2, 12))), dtype=np.float32)
        return np.clip(cv2.resize(small, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC), 0, 1)

    def stripes():
        ang, f = r.uniform(0, np.pi), r.uniform(3, 14)
        t = 0.5 + 0.5 * np.sin(2 * np.pi * f * (np.cos(ang) * XN + np.sin(ang) * YN)
                               + r.uniform(0, 6.3))
        return (t > 0.5).astype(np.float32) * 0.8 + 0.2 * t if r.random() < 0.5 else t

    def checker():
        cell = r.uniform(8, 40)
        ox, oy = r.uniform(0, cell, 2)
        return ((np.floor((XX + ox) / cell) + np.floor((YY + oy) / cell)) % 2).astype(
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
            col = clamp(r.uniform(0, 255, 3))
            shape = r.integers(4)
            x, y = r.uniform(-20, WIDTH + 20), r.uniform(-20, HEIGHT + 20)
            s = r.uniform(6, 45)
            if shape == 0:
                cv2.circle(img, (int(x * ONE), int(y * ONE)), int(s * ONE), col, -1,
                           cv2.LINE_AA, SHIFT)
            elif shape == 1:
                w, h = s, r.uniform(6, 45)
                cv2.fillPoly(img, [points([(x, y), (x + w, y), (x + w, y + h), (x, y + h)])], col,
                             cv2.LINE_AA, SHIFT)
            elif shape == 2:
                ang = r.uniform(0, 2 * np.pi)
                cv2.line(img, (int(x * ONE), int(y * ONE)),
                         (int((x + 4 * s * np.cos(ang)) * ONE),
                          int((y + 4 * s * np.sin(ang)) * ONE)),
                         col, int(r.integers(1, 5)), cv2.LINE_AA, SHIFT)
            else:
                n = int(r.integers(3, 7))
                ang = np.sort(r.uniform(0, 2 * np.pi, n))
                rad = s * r.uniform(0.5, 1.0, n)
                cv2.fillPoly(img, [points(np.stack([x + rad * np.cos(ang),
                                                  y + rad * np.sin(ang)], 1))],
                             col, cv2.LINE_AA, SHIFT)
        return img.astype(np.float32)
    return img


_NOISE = []


def noise_bank() -> np.ndarray:
    """Fixed unit Gaussian noise, twice the image size; each image adds a crop at a random
    offset (cheaper than drawing fresh noise per image, and just as deterministic)."""
    if not _NOISE:
        _NOISE.append(np.random.default_rng(zlib.crc32(b"sensor-noise")).standard_normal(
            (2 * HEIGHT, 2 * WIDTH, 3), dtype=np.float32))
    return _NOISE[0]
