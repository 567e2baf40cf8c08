"""Where an edit may change a photo around one face: its head (face + hair) from a segmenter or
the landmark prior, grown and feathered into blend weights (`HeadMasker` → `HeadMask`)."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from maae_tf.data.faces import TEMPLATE_CELEBA5, Face, apply, invert, smoothstep
from maae_tf.data.masks import FOREGROUND, MaskUnavailable
from maae_tf.data.masks.landmarks import LandmarksSource
from maae_tf.data.masks.segmenter import HEAD, face_frame

# ------------------------------------------------------------------------------------ head mask
# Around the head mask the blend grows by HEAD_GROW at full weight, then fades to 0 over
# HEAD_FEATHER; both in face units (eye-to-mouth distance, 41 px on CelebA's aligned photos, ~270
# px on a 1024² CelebA-HQ portrait): enough to cover a segmentation a few pixels short of the
# hair's edge without a seam, small enough to leave the wall behind the head alone.
HEAD_GROW, HEAD_FEATHER = 0.03, 0.05
MIN_FEATHER_PX = 2.0  # a small face still gets a ramp, not a hard edge


@dataclasses.dataclass
class HeadMask:
    """Blend weights of one face's head in a photo: `weights` float32 [y1 - y0, x1 - x0] in
    [0, 1] over the photo box `box` (x0, y0, x1, y1), 0 outside it; `source` names the mask
    source that found the head ("segmenter" or "landmarks")."""

    box: tuple[int, int, int, int]
    weights: np.ndarray
    source: str

    def within(self, box) -> np.ndarray:
        """The weights over another photo box (x0, y0, x1, y1): 0 where this mask's box ends."""
        x0, y0, x1, y1 = box
        out = np.zeros((y1 - y0, x1 - x0), np.float32)
        a0, b0, a1, b1 = self.box
        ix0, iy0, ix1, iy1 = max(x0, a0), max(y0, b0), min(x1, a1), min(y1, b1)
        if ix0 < ix1 and iy0 < iy1:
            out[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = self.weights[iy0 - b0:iy1 - b0, ix0 - a0:ix1 - a0]
        return out


def face_landmarks5(face: Face) -> np.ndarray:
    """CelebA's 5 points of `face` in photo pixels: the detected ones (68-point model) or, for a
    detector that gives only its alignment points, CelebA's mean template mapped back."""
    if face.landmarks5 is not None:
        return np.asarray(face.landmarks5, np.float64).reshape(5, 2)
    return apply(invert(face.to_aligned()), TEMPLATE_CELEBA5)


def head_window(landmarks: np.ndarray, height: int, width: int, margin: float) -> tuple[int, int, int, int]:
    """The photo box (x0, y0, x1, y1) that holds the segmenter's head region (`segmenter.HEAD`) of
    the face with these 5 landmarks, `margin` face units wider on every side, clipped to the photo."""
    origin, down, side, scale = face_frame(landmarks)
    a = np.array([HEAD["top"] - margin, HEAD["bottom"] + margin])
    b = np.array([-HEAD["side"] - margin, HEAD["side"] + margin])
    corners = np.array([origin + scale * (i * down + j * side) for i in a for j in b])
    x0, y0 = np.floor(corners.min(0)).astype(int)
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 1
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height)


def grow_and_feather(foreground: np.ndarray, grow: float, feather: float) -> np.ndarray:
    """float32 weights of a boolean mask: 1 on it and up to `grow` pixels from it, then a
    smoothstep to exactly 0 at `grow + feather` pixels (Euclidean distance)."""
    # distance of every pixel to the nearest foreground pixel (0 on the foreground)
    dist = cv2.distanceTransform((~foreground).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return smoothstep((grow + feather - dist) / max(feather, 1e-6)).astype(np.float32)


def attached_to_face(foreground: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The connected parts of a boolean mask that hold one of the face's 5 landmarks: the head
    of THIS face, without another person's head or a stray blob the segmenter calls person."""
    n, labels = cv2.connectedComponents(foreground.astype(np.uint8), connectivity=8)
    h, w = foreground.shape
    xy = np.clip(np.round(landmarks).astype(int), 0, [w - 1, h - 1])
    keep = {int(labels[y, x]) for x, y in xy} - {0}
    return np.isin(labels, sorted(keep)) if keep else np.zeros_like(foreground, bool)


class HeadMasker:
    """Where an edit may change the photo around one face: its head (face + hair), grown by
    `grow` and feathered over `feather` (face units), as a `HeadMask`.

    The head comes from `segmenter`, a `maae_tf.data.masks` segmenter source (person segmentation
    restricted to the head region of the face's landmarks), run on the window around the head
    (`head_window`) so a small face in a big photo is seen at the segmenter's resolution; where it
    finds nothing (MaskUnavailable), or without one (None), from the `landmarks` prior (face and
    hair-cap ellipses from the 5 landmarks). Raises MaskUnavailable when neither gives a mask."""

    def __init__(self, segmenter=None, grow: float = HEAD_GROW, feather: float = HEAD_FEATHER):
        self.segmenter = segmenter
        self.prior = LandmarksSource(warn=False)  # edit prints which source it used instead
        self.grow, self.feather = grow, feather

    def head(self, window: np.ndarray, landmarks: np.ndarray, name: str) -> tuple[np.ndarray, str]:
        """(boolean head of the face with these landmarks in `window`, the source's name): the
        segmenter's when it finds a head attached to the face, else the prior's."""
        for source in ([self.segmenter] if self.segmenter is not None else []) + [self.prior]:
            try:
                head = attached_to_face(source(window, name=name, landmarks=landmarks) == FOREGROUND, landmarks)
            except MaskUnavailable:
                if source is self.prior:
                    raise
                continue
            if head.any():
                return head, source.name
        raise MaskUnavailable(f"{name}: no head found around the face's landmarks")

    def __call__(self, rgb: np.ndarray, face: Face, name: str = "photo") -> HeadMask:
        points = face_landmarks5(face)
        try:
            scale = face_frame(points)[3]
        except ValueError as e:
            raise MaskUnavailable(f"{name}: {e}") from None
        grow, feather = self.grow * scale, max(self.feather * scale, MIN_FEATHER_PX)
        x0, y0, x1, y1 = head_window(points, rgb.shape[0], rgb.shape[1], (grow + feather) / scale)
        if x0 >= x1 or y0 >= y1:
            raise MaskUnavailable(f"{name}: the face's head region lies outside the photo")
        local = (points - [x0, y0]).astype(np.float32)
        head, source = self.head(np.ascontiguousarray(rgb[y0:y1, x0:x1, :3]), local, name)
        return HeadMask((x0, y0, x1, y1), grow_and_feather(head, grow, feather), source)


def default_masker(log=print) -> HeadMasker:
    """The HeadMasker of `edit` and the demo: the cached selfie segmenter, else (after a one-line
    note, when it is not cached or damaged) the landmark prior alone; it never downloads."""
    from maae_tf.data.masks import make_source

    try:
        segmenter = make_source("segmenter:region=landmarks")
    except (OSError, RuntimeError, ValueError) as e:  # ModelNotCached is an OSError
        log(f"note: {e}; blending under the landmark prior (head ellipses from the 5 landmarks) instead")
        segmenter = None
    return HeadMasker(segmenter)
