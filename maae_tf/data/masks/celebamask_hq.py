"""Mask source `celebamask_hq:DIR`: hand-made CelebAMask-HQ label maps as background masks.

Two layouts are read, looked up by the image's file stem (`12.jpg` → `12`):

- combined label maps `DIR/<stem>.png`: one uint8 [H, W] map of class ids (0 background, 1 skin,
  2 nose, 3 eyeglasses, 4/5 eyes, 6/7 brows, 8/9 ears, 10 mouth, 11/12 lips, 13 hair, 14 hat,
  15 earring, 16 necklace, 17 neck, 18 cloth), as in the CelebAMask-HQ release;
- the release's per-part masks `CelebAMask-HQ-mask-anno/<i // 2000>/<i:05d>_<part>.png` (512²,
  white = the part) for an integer stem i, DIR being the release root or the
  `CelebAMask-HQ-mask-anno` folder itself.

Foreground (0) = the classes in `classes` (default face + hair, 1-15; neck, necklace and cloth are
background), everything else 255. The map is resized to the image with nearest neighbour, so it
must frame the image as the image does (CelebA-HQ maps go with CelebA-HQ images, not with
CelebA's 178×218 aligned crops): a map whose aspect ratio differs from the image's by over 1 % is
`MaskUnavailable`, and so is a missing or unreadable map. The release layout is indexed by
CelebA-HQ's own unpadded numbers (`12.jpg`); a zero-padded CelebA name (`000012.jpg`, another
photo) is never looked up there.

Classes in a spec: `celebamask_hq:DIR?classes=1-13,15` (ranges and single ids, comma-separated).
"""

from __future__ import annotations

import os

import cv2
import numpy as np

from maae_tf.data.masks import BACKGROUND, FOREGROUND, SOURCES, MaskUnavailable

CLASS_NAMES = ("background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear",
               "r_ear", "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth")
FACE_HAIR = tuple(range(1, 16))
ANNO_DIR = "CelebAMask-HQ-mask-anno"
PER_FOLDER = 2000


def parse_classes(text: str) -> tuple[int, ...]:
    """"1-13,15" → (1, ..., 13, 15); ids must lie in 0-18."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"bad class list {text!r}: {part!r} is not an id or a range like 1-15") from None
        if not 0 <= a <= b < len(CLASS_NAMES):
            raise ValueError(f"bad class list {text!r}: ids are 0-{len(CLASS_NAMES) - 1}")
        out.update(range(a, b + 1))
    if not out:
        raise ValueError(f"empty class list {text!r}")
    return tuple(sorted(out))


def foreground_of(label_map: np.ndarray, classes=FACE_HAIR) -> np.ndarray:
    """Boolean [H, W]: pixels whose class is in `classes`."""
    return np.isin(label_map, np.asarray(classes, np.uint8))


def to_mask(foreground: np.ndarray) -> np.ndarray:
    """Boolean foreground → uint8 mask (0 foreground, 255 background)."""
    return np.where(foreground, FOREGROUND, BACKGROUND).astype(np.uint8)


class CelebAMaskHQSource:
    """Background masks from CelebAMask-HQ label maps found in `root` (see the module docstring)."""

    name = "celebamask_hq"

    def __init__(self, root: str, classes=FACE_HAIR):
        if not root:
            raise ValueError("mask source celebamask_hq needs a folder: celebamask_hq:DIR")
        if not os.path.isdir(root):
            raise FileNotFoundError(f"mask source celebamask_hq: {root} does not exist")
        self.root = root
        self.classes = tuple(int(c) for c in classes)
        inner = os.path.join(root, ANNO_DIR)
        if os.path.isdir(inner):
            self.anno = inner
        elif os.path.basename(os.path.normpath(root)) == ANNO_DIR:
            self.anno = root
        else:
            self.anno = None

    def label_map(self, stem: str) -> np.ndarray | None:
        """The class-id map of image `stem`, or None when DIR has none. Per-part masks are merged
        in CLASS_NAMES order (a later part overwrites an earlier one, as the release's own
        script does)."""
        path = os.path.join(self.root, stem + ".png")
        if os.path.isfile(path):
            m = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise MaskUnavailable(f"{stem}: {path} is not a readable PNG")
            return m
        if self.anno is None or not stem.isdigit() or stem != str(int(stem)):
            return None  # release indices are unpadded ("12"); "000012" is a CelebA name, another photo
        index = int(stem)
        folder = os.path.join(self.anno, str(index // PER_FOLDER))
        out = None
        for cls, part in enumerate(CLASS_NAMES[1:], start=1):
            p = os.path.join(folder, f"{index:05d}_{part}.png")
            if not os.path.isfile(p):
                continue
            m = cv2.imread(p, cv2.IMREAD_GRAYSCALE)
            if m is None:
                raise MaskUnavailable(f"{stem}: {p} is not a readable PNG")
            if out is None:
                out = np.zeros(m.shape, np.uint8)
            elif m.shape != out.shape:
                raise MaskUnavailable(f"{stem}: {p} is {m.shape}, the other parts {out.shape}")
            out[m > 127] = cls
        return out

    def __call__(self, image: np.ndarray, *, name: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        stem = os.path.splitext(os.path.basename(name))[0]
        m = self.label_map(stem)
        if m is None:
            raise MaskUnavailable(f"{name}: no CelebAMask-HQ label map for {stem!r} in {self.root} "
                                  f"(neither {stem}.png nor {ANNO_DIR}/<k>/<i:05d>_<part>.png)")
        h, w = image.shape[:2]
        if abs(m.shape[1] / m.shape[0] - w / h) > 0.01 * (w / h):
            raise MaskUnavailable(f"{name}: its label map is {m.shape[1]}x{m.shape[0]}, the image {w}x{h}: "
                                  f"another framing (CelebA-HQ maps do not fit CelebA's aligned 178x218 photos)")
        if m.shape != (h, w):
            m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
        return to_mask(foreground_of(m, self.classes))


def make(arg: str | None, data_dir: str = "") -> CelebAMaskHQSource:
    """`celebamask_hq:DIR[?classes=1-15]`; a relative DIR is taken as given (from the working
    directory), or under `data_dir` when it exists there."""
    if not arg:
        raise ValueError("mask source celebamask_hq needs a folder: celebamask_hq:DIR")
    root, _, query = arg.partition("?")
    classes = FACE_HAIR
    if query:
        key, _, value = query.partition("=")
        if key != "classes":
            raise ValueError(f"celebamask_hq: unknown option {key!r} (known: classes=1-15)")
        classes = parse_classes(value)
    if not os.path.isabs(root) and not os.path.isdir(root) and data_dir and os.path.isdir(os.path.join(data_dir, root)):
        root = os.path.join(data_dir, root)
    return CelebAMaskHQSource(root, classes)


SOURCES["celebamask_hq"] = make
