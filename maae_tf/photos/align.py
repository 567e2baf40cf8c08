"""One face of a photo, as `edit` and the demo both handle it: aligned to CelebA's template and cut
as the model's training crop (`align_face`), its head mask (`head_mask`), and the change the model
made to the crop pasted back under that mask (`blend_edit`). Sharing these steps is what makes the
demo's download the file `edit` writes for the same δ, bit for bit. Also `BadInput`, the problem
with one photo that both report, and the messages they report it with."""

from __future__ import annotations

import dataclasses

import numpy as np

from maae_tf.data import faces
from maae_tf.photos import heads

MIN_CROP = 64        # smallest crop image sent to the model (pixels)
MAX_CROP = 1024      # largest (a bigger face is downscaled into it)


class BadInput(Exception):
    """A problem with one photo: reported, that photo skipped, the others still processed."""


def no_face_message(name: str, photo: np.ndarray) -> str:
    return f"{name}: no face found ({photo.shape[1]}x{photo.shape[0]} px)"


def too_small_message(name: str, index: int, width: float, min_face: int) -> str:
    return f"{name}: face {index} skipped: {width:.0f} px wide, below --min_face={min_face}"


def all_too_small_message(name: str, count: int) -> str:
    return f"{name}: every face found ({count}) is too small"


@dataclasses.dataclass
class AlignedFace:
    """One face of a photo, aligned as the model's training crop: `width` the crop's width in
    photo pixels (what --min_face checks), `m` the photo → crop transform, `crop` the uint8
    [size, size, 3] crop image (about the photo's own resolution), taken from the unedited photo."""

    face: faces.Face
    width: float
    size: int
    m: np.ndarray
    crop: np.ndarray | None = None


def align_face(rgb: np.ndarray, face: faces.Face, crop_box, with_crop: bool = True) -> AlignedFace:
    """`face` of the RGB photo aligned to CelebA's template and cut as the training crop
    `crop_box` (the model's `crop`); `with_crop=False` leaves the crop image out (a face too small
    to edit needs only its width)."""
    to_aligned = face.to_aligned()
    width = faces.face_width(to_aligned, crop_box)
    size = faces.crop_size(to_aligned, crop_box, MIN_CROP, MAX_CROP)
    m = faces.crop_transform(to_aligned, crop_box, size, size)
    return AlignedFace(face, width, size, m, faces.warp_crop(rgb, m, size) if with_crop else None)


def head_mask(masker, rgb: np.ndarray, face: faces.Face, name: str, index: int) -> heads.HeadMask:
    """The face's head mask from `masker` (a heads.HeadMasker); BadInput when there is none."""
    try:
        return masker(rgb, face, name=name)
    except ValueError as e:  # MaskUnavailable: neither the segmenter nor the prior gave a head
        raise BadInput(f"{name}: face {index}: no head mask ({e})") from None


def blend_edit(result: np.ndarray, aligned: AlignedFace, edited_crop: np.ndarray, head: heads.HeadMask):
    """`result` with the change the model made to the face's crop (`edited_crop` − crop) warped
    back and added under the head mask; returns (new photo, boolean region it may have changed)."""
    change = edited_crop.astype(np.float32) - aligned.crop.astype(np.float32)
    return faces.paste_change(result, change, aligned.m, faces.feather_mask(aligned.size), head)
