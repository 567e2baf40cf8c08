"""Background masks for the mask loss (paper Eq. 1, docs/method.md §6), one source per run.

A mask source turns one ALIGNED CelebA photo (178×218 RGB uint8, uncropped: the crop happens
later, with the image) into a uint8 mask of the same height and width, 255 = background,
0 = foreground (face + hair). `make_source(spec)` builds one from its name:

    files            the dataset's own `background_masks/<stem>.png` (the synthetic set's exact
                     masks, or masks a user computed elsewhere)
    celebamask_hq:DIR  CelebAMask-HQ label maps (face + hair = classes 1-15 foreground)
    segmenter        MediaPipe's selfie-segmentation model run offline, restricted to a head region
    landmarks        a geometric prior from the 5 CelebA landmarks (fallback only, warns)

Every source is called as `source(image, name=..., landmarks=...)`: `name` is the image's file
name (`000001.jpg`), `landmarks` the 5 (x, y) points of `list_landmarks_align_celeba.txt` as a
float32 [5, 2] array, or None when the dataset has no landmark file. A source that cannot produce
a mask for an image raises `MaskUnavailable` naming the image and the reason (the caller records
it; it is never silently replaced by another source). A source that can find its mask more than
one way (`segmenter`: the dataset's landmarks, dlib, dlib on the enlarged image, CelebA's template)
also has `with_origin(image, name=..., landmarks=...)` → (mask, way); `mask_with_origin` gives
every mask's origin, `segmenter/dlib-upsampled` or plainly `files`, which dataset preparation
stores with each record and counts in its manifest.
"""

from __future__ import annotations

import importlib
import os
from typing import Callable, Protocol

import cv2
import numpy as np

BACKGROUND, FOREGROUND = 255, 0


class MaskUnavailable(ValueError):
    """No mask for this image from this source (missing label map, no face found, …)."""


class MaskSource(Protocol):
    name: str

    def __call__(self, image: np.ndarray, *, name: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        ...


class FilesSource:
    """`DATA_DIR/background_masks/<stem>.png` as the dataset ships them."""

    name = "files"

    def __init__(self, data_dir: str, folder: str = "background_masks"):
        self.dir = os.path.join(data_dir, folder)
        if not os.path.isdir(self.dir):
            raise FileNotFoundError(f"mask source 'files': {self.dir} does not exist")

    def __call__(self, image: np.ndarray, *, name: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        path = os.path.join(self.dir, os.path.splitext(name)[0] + ".png")
        mask = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise MaskUnavailable(f"{name}: no readable mask at {path}")
        if mask.shape != image.shape[:2]:
            raise MaskUnavailable(f"{name}: mask {path} is {mask.shape[1]}x{mask.shape[0]}, "
                                  f"the image {image.shape[1]}x{image.shape[0]}")
        return mask


# name -> factory(argument after ':' or None, data_dir) -> MaskSource; sources register here
SOURCES: dict[str, Callable[[str | None, str], MaskSource]] = {
    "files": lambda arg, data_dir: FilesSource(data_dir),
}


def make_source(spec: str, data_dir: str = "") -> MaskSource:
    """The mask source `spec` names ("files", "celebamask_hq:DIR", "segmenter", "landmarks")."""
    kind, _, arg = spec.partition(":")
    if kind not in SOURCES:
        _register_builtin()
    if kind not in SOURCES:
        raise ValueError(f"unknown mask source {spec!r}; known: {', '.join(sorted(SOURCES))}")
    return SOURCES[kind](arg or None, data_dir)


def _register_builtin() -> None:
    """Imports the modules that register the heavier sources (they import TF, cv2, …)."""
    for module in ("maae_tf.data.masks.celebamask_hq", "maae_tf.data.masks.segmenter", "maae_tf.data.masks.landmarks"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise


def check_mask(mask: np.ndarray, image: np.ndarray, source: str, name: str) -> np.ndarray:
    """A source's result as uint8 [H, W] of the image's size, or MaskUnavailable saying why."""
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2] or mask.dtype != np.uint8:
        raise MaskUnavailable(f"{name}: source {source} gave a {mask.dtype} mask of shape {mask.shape}, "
                              f"expected uint8 {image.shape[:2]}")
    return mask


def mask_with_origin(source: MaskSource, image: np.ndarray, *, name: str,
                     landmarks: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """(the checked mask, its origin: `<source>/<way>` for a source with `with_origin`, else the
    source's name); MaskUnavailable passes through."""
    with_origin = getattr(source, "with_origin", None)
    if with_origin is None:
        mask, origin = source(image, name=name, landmarks=landmarks), source.name
    else:
        mask, way = with_origin(image, name=name, landmarks=landmarks)
        origin = f"{source.name}/{way}"
    return check_mask(mask, image, source.name, name), origin
