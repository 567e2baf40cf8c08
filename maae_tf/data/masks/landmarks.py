"""Mask source `landmarks`: a geometric face + hair prior from the 5 CelebA landmarks.

A FALLBACK only (it warns once per source): it knows where a typical head is, not where this
person's hair ends. In face units (origin at the eye midpoint, `down` towards the mouth midpoint,
`side` across, lengths in eye-to-mouth distances, 41 px on CelebA's aligned photos; see
`maae_tf.data.masks.segmenter.face_frame`) the foreground is the union of

- a face ellipse centred at down = `face_center`, semi-axes `face_side` × `face_down`
  (forehead to chin, cheek to cheek), and
- a hair/skull ellipse centred at down = `hair_center`, semi-axes `hair_side` × `hair_down`,
  cut at down = `hair_cut` (the hair cap and temples, not the cheeks).

The 5 landmarks are always inside (the face ellipse holds them with a margin). Without landmarks:
MaskUnavailable, or with `landmarks:template` CelebA's mean positions (aligned photos only).
"""

from __future__ import annotations

import warnings

import numpy as np

from maae_tf.data.masks import SOURCES, MaskUnavailable
from maae_tf.data.masks.celebamask_hq import to_mask
from maae_tf.data.masks.segmenter import face_coordinates, template_landmarks

PRIOR = dict(face_center=0.25, face_side=1.15, face_down=1.35,
             hair_center=-0.35, hair_side=1.45, hair_down=1.65, hair_cut=0.6)


def prior_foreground(shape, landmarks: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Boolean [H, W] face + hair prior of the face with these 5 landmarks."""
    q = {**PRIOR, **(params or {})}
    a, b = face_coordinates(shape, landmarks)
    face = ((a - q["face_center"]) / q["face_down"]) ** 2 + (b / q["face_side"]) ** 2 <= 1.0
    hair = (((a - q["hair_center"]) / q["hair_down"]) ** 2 + (b / q["hair_side"]) ** 2 <= 1.0) & (a <= q["hair_cut"])
    return face | hair


class LandmarksSource:
    """The `landmarks` fallback source (see the module docstring)."""

    name = "landmarks"

    def __init__(self, template: bool = False, params: dict | None = None, warn: bool = True):
        self.template, self.params = template, params
        if warn:
            warnings.warn("mask source 'landmarks' is a geometric prior (an ellipse face and hair cap from 5 "
                          "landmarks), a fallback only: prefer celebamask_hq:DIR or segmenter",
                          UserWarning, stacklevel=3)

    def __call__(self, image: np.ndarray, *, name: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        if landmarks is None:
            if not self.template:
                raise MaskUnavailable(f"{name}: mask source 'landmarks' needs the image's landmarks (none given)")
            try:
                landmarks = template_landmarks(image.shape)
            except ValueError as e:
                raise MaskUnavailable(f"{name}: {e}") from None
        pts = np.asarray(landmarks, np.float64).reshape(-1, 2)
        if pts.shape != (5, 2) or not np.all(np.isfinite(pts)):
            raise MaskUnavailable(f"{name}: landmarks must be 5 finite (x, y) points, got {np.asarray(landmarks).shape}")
        try:
            return to_mask(prior_foreground(image.shape, pts, self.params))
        except ValueError as e:
            raise MaskUnavailable(f"{name}: {e}") from None


def make(arg: str | None, data_dir: str = "") -> LandmarksSource:
    if arg not in (None, "template"):
        raise ValueError(f"landmarks: unknown option {arg!r} (only landmarks:template)")
    return LandmarksSource(template=arg == "template")


SOURCES["landmarks"] = make
