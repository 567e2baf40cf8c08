"""The synthetic faces: identities (face shape, eyes, skin, nose, hair style) and the drawing of
one aligned 178x218 face with its labels, landmarks and background mask (`render`). The set they
make, in CelebA's release layout, is written by `maae_tf.data.synthetic`.

Drawn attributes (labels are exactly what is drawn, sampled per image independently of the
identity and of each other): Mouth_Slightly_Open (~50%), Smiling (~40%), one of
Black/Blond/Brown/Gray_Hair (25/30/25/20%), Eyeglasses (~30%), Pale_Skin (~30%), Bangs (~35%).
Male belongs to the identity (short vs long hair, jaw). No_Beard and Young are +1 everywhere; the
rest are -1. Identities fix face shape, eye spacing/size/colour, base skin tone, nose, hair style.

Determinism: image i (1-based) draws from `np.random.default_rng([seed, i])`, identity k from
`np.random.default_rng([seed, IDENTITY_TAG, k])`; files are byte-identical for any `workers`.
"""

from __future__ import annotations

import math
import zlib

import cv2
import numpy as np

from maae_tf import attributes
from maae_tf.data import synthetic_canvas

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
_LIGHT_SKIN = np.array([236, 196, 166], np.float32)  # RGB
_DARK_SKIN = np.array([108, 70, 50], np.float32)
_PALE = np.array([250, 238, 232], np.float32)
_EYE_COLOURS = np.array([[95, 58, 30], [45, 28, 18], [70, 112, 165], [78, 118, 72],
                         [112, 122, 128]], np.float32)


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

    c = synthetic_canvas.Canvas(np.clip(synthetic_canvas.background(r), 0, 255).astype(np.uint8))

    # --- back hair (behind the head, long hair down to the shoulders) ---
    hv = ident["hair_vol"] * r.uniform(0.98, 1.02)
    sk_cy, sk_ax, sk_ay = cy - 0.12 * b, a * hv, b * (0.96 + 0.2 * (hv - 1))
    if ident["hair_len"] > 0.4:
        y_bot = cy + b * (0.5 + 1.2 * ident["hair_len"])
        top = synthetic_canvas.arc_points(cx, sk_cy, sk_ax, sk_ay, np.pi, 2 * np.pi)
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
            (cx + 0.5 * a, synthetic_canvas.HEIGHT + 2), (cx - 0.5 * a, synthetic_canvas.HEIGHT + 2)], neck, _BG)
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
    c.line(synthetic_canvas.arc_points(cx, nose_y - 1.5, nw * 0.5, 3.0, 0.15 * np.pi, 0.85 * np.pi, 9),
           skin * 0.72, 1.5)
    for sgn in (-1, 1):
        c.ellipse(cx + sgn * nw * 0.27, nose_y + 0.8, 1.9, 1.1, skin * 0.42, None)

    # --- eyes and brows ---
    for sgn in (-1, 1):
        ex = cx + sgn * eye_dx
        c.ellipse(ex, eye_y, ew, eh, np.array([236, 233, 228]) * r.uniform(0.9, 1.0), _PART)
        c.ellipse(ex, eye_y, eh * 0.95, eh * 0.95, ident["eye_colour"], _PART)
        c.ellipse(ex, eye_y, eh * 0.42, eh * 0.42, (12, 10, 10), _PART)
        c.line(synthetic_canvas.arc_points(ex, eye_y + 0.3, ew * 1.04, eh * 1.15, 1.05 * np.pi, 1.95 * np.pi,
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
    arc = synthetic_canvas.arc_points(cx, sk_cy, sk_ax, sk_ay, np.pi + dt, 2 * np.pi - dt, 25)
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
    mult = 1.0 + r.uniform(0.0, 0.12) * (np.cos(ang) * (synthetic_canvas.XN - 0.5) + np.sin(ang) * (synthetic_canvas.YN - 0.5))
    rr = ((synthetic_canvas.XX - cx) / (a * 1.1)) ** 2 + ((synthetic_canvas.YY - cy) / (b * 1.1)) ** 2
    mult = np.where(lab == _SKIN, mult * (1.06 - 0.14 * np.minimum(rr, 1.0)), mult)
    strands = r.standard_normal((6, 40), dtype=np.float32)
    strands = cv2.resize(strands, (synthetic_canvas.WIDTH, synthetic_canvas.HEIGHT), interpolation=cv2.INTER_CUBIC)
    mult = np.where(lab == _HAIR, mult * (1.0 + 0.09 * strands), mult)
    img *= mult[..., None]
    sigma = r.uniform(0.0, 0.9)
    if sigma > 0.35:
        img = cv2.GaussianBlur(img, (0, 0), sigma)
    oy, ox = int(r.integers(synthetic_canvas.HEIGHT)), int(r.integers(synthetic_canvas.WIDTH))
    img += synthetic_canvas.noise_bank()[oy:oy + synthetic_canvas.HEIGHT, ox:ox + synthetic_canvas.WIDTH] * r.uniform(1.5, 5.0)
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
