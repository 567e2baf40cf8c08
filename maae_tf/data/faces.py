"""Faces in ordinary photos: detection, landmarks, CelebA alignment, crop, warp-back and blend.

The networks are trained on CelebA's aligned photos (178×218, eyes and mouth at fixed places)
cropped by the config's `crop`. To edit a face in any photo, `maae_tf.photos.edit`:

1. finds faces and landmarks (`DlibDetector`: dlib's HOG detector and its 68-point shape model),
2. fits a similarity transform (rotation, uniform scale, translation; no shear, no reflection)
   from the landmarks to where those points sit in CelebA's aligned photo (`TEMPLATE_*`),
3. warps the photo into the training crop (`crop_transform`, `warp_crop`) at about the photo's own
   resolution, so `edit_detail` keeps the face's detail,
4. warps the CHANGE the model made (edited crop − crop), weighted by a feathered mask, back into
   the photo and adds it (`paste_change`) under the face's HEAD mask (`maae_tf.photos.heads.HeadMasker`: the
   segmenter's face + hair, else a landmark prior, grown and feathered in photo pixels). Where
   either weight is 0 (outside the head, outside the face's crop square, the crop's feathered
   rim) exactly 0 is added, so the rest of the photo (the background) is bit-identical; at
   δ = 0 the whole photo is returned exactly.

Coordinates are (x, y) in pixels with the centre of the top-left pixel at (0, 0), as OpenCV's
`warpAffine` uses them. Transforms are 2×3 float64 matrices mapping photo → target.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os

import cv2
import numpy as np

from maae_tf.files import read_photo

ALIGNED_W, ALIGNED_H = 178, 218  # CelebA's aligned photo

# Where CelebA's aligned release puts faces. Source: the CelebA authors' own alignment function,
# align_face_celeba.m in github.com/liuziwei7/mobile-id ("the face alignment method used in
# generating CelebA dataset"): a non-reflective similarity maps the two eyes and the midpoint of
# the mouth corners to
#     pos_align = [70.745 112; 108.237 112; 89.432 153.514]      (MATLAB, 1-based, x y)
# on the 178×218 output. Minus 1 for 0-based pixel centres:
CELEBA_ALIGN_TARGETS = np.array([[69.745, 111.0],     # left eye (image left), centre
                                 [107.237, 111.0],    # right eye
                                 [88.432, 152.514]])  # mouth centre (mean of the corners)
# The 5 points of list_landmarks_align_celeba.txt (lefteye, righteye, nose, leftmouth, rightmouth):
# their typical (mean) positions as quoted, in integers, in a comment of the CelebA(-HQ)
# alignment scripts of ALAE (S. Pidhorskyi, 2019-2020; github.com/podgorskiy/ALAE):
#     "69 111 108 111 88 136 72 152 105 152"
# (not recomputed here: the 32-photo CelebA sample has no landmark file). They agree with the
# alignment targets above to 1.3 px (eyes) and 0.6 px (mouth centre). Used to check detections;
# the alignment itself uses CELEBA_ALIGN_TARGETS.
TEMPLATE_CELEBA5 = np.array([[69.0, 111.0], [108.0, 111.0], [88.0, 136.0], [72.0, 152.0], [105.0, 152.0]])

# How dlib's points map onto that frame (`DlibDetector`):
# - 68-point model (default): eye centres (mean of each eye's 6 contour points) and mouth
#   corners (points 48, 54) are CelebA's own points, so a face is aligned exactly as CelebA was:
#   eyes + mouth centre → CELEBA_ALIGN_TARGETS. On the 30 of 32 photos of
#   the 32-photo CelebA sample where dlib finds a face, the detected 5 points land 3.4 px (mean) from
#   TEMPLATE_CELEBA5 and the crop this picks is 2.7 px (mean over the crop's corners, aligned
#   pixels) from CelebA's own crop (`python -m maae_tf.faces --measure FOLDER` prints these).
# - 5-point model (`points=5`, a 9 MB model instead of 99 MB): 2 corners per eye and the nose BASE
#   (subnasale), neither CelebA's nose tip nor a mouth point. It aligns the two eye centres and
#   the nose base on where they fall on CelebA's aligned photos, measured with dlib 20.0 on those
#   30 sample photos (eyes within 2.2 px of the official targets; the nose base 6 px below CelebA's
#   mean nose tip). Head turns move the nose base sideways, so this crop is 8.8 px from CelebA's.
TEMPLATE_DLIB3 = np.array([[69.37, 113.18],   # left eye centre (image left)
                           [107.75, 113.00],  # right eye centre
                           [88.23, 142.10]])  # nose base (dlib point 4)


# ---------------------------------------------------------------------------------- transforms
def similarity_transform(src, dst) -> np.ndarray:
    """The least-squares similarity (rotation, uniform scale, translation; no reflection) taking
    points `src` [k, 2] to `dst` [k, 2], k ≥ 2, as a 2×3 matrix (Umeyama 1991 without the
    reflection branch; for k = 2 it is exact)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if src.shape != dst.shape or src.ndim != 2 or src.shape[1] != 2 or len(src) < 2:
        raise ValueError(f"need two [k, 2] point arrays with k >= 2, got {src.shape} and {dst.shape}")
    ms, md = src.mean(0), dst.mean(0)
    s, d = src - ms, dst - md
    var = (s ** 2).sum()
    if var <= 1e-12:
        raise ValueError("the source points coincide; no similarity transform is defined")
    # complex form: d ≈ z · s with z = a + ib  ⇒  z = Σ conj(s)·d / Σ |s|²
    sc, dc = s[:, 0] + 1j * s[:, 1], d[:, 0] + 1j * d[:, 1]
    z = (np.conj(sc) * dc).sum() / var
    a, b = z.real, z.imag
    m = np.array([[a, -b, 0.0], [b, a, 0.0]])
    m[:, 2] = md - m[:, :2] @ ms
    return m


def apply(m: np.ndarray, points) -> np.ndarray:
    """`points` [k, 2] mapped by the 2×3 transform `m`."""
    p = np.asarray(points, np.float64)
    return p @ m[:, :2].T + m[:, 2]


def invert(m: np.ndarray) -> np.ndarray:
    """The inverse of a 2×3 affine transform."""
    full = np.vstack([m, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """outer ∘ inner: first `inner`, then `outer`."""
    return (np.vstack([outer, [0, 0, 1]]) @ np.vstack([inner, [0, 0, 1]]))[:2]


def scale_of(m: np.ndarray) -> float:
    """The uniform scale of a similarity transform."""
    return float(np.sqrt(abs(np.linalg.det(m[:, :2]))))


def crop_box(crop) -> tuple[float, float, float, float]:
    """(top, left, height, width) of the training crop in aligned-photo pixels, from the config's
    `crop` relative to 178×218 (e.g. the default (26/218, 3/178, 170/218, 170/178) → (26, 3, 170, 170))."""
    top, left, height, width = (float(v) for v in crop)
    return top * ALIGNED_H, left * ALIGNED_W, height * ALIGNED_H, width * ALIGNED_W


def crop_transform(to_aligned: np.ndarray, crop, out_w: int, out_h: int) -> np.ndarray:
    """photo → crop-image transform: `to_aligned` (photo → 178×218 aligned frame), then the
    training crop box scaled to out_w × out_h pixels. Pixel edges map to pixel edges, so a crop of
    the aligned photo itself at 170×170 is a plain integer slice."""
    top, left, height, width = crop_box(crop)
    sx, sy = out_w / width, out_h / height
    # aligned pixel centre c has edge coordinate c + 0.5; out centre = (edge - left) * s - 0.5
    box = np.array([[sx, 0.0, (0.5 - left) * sx - 0.5], [0.0, sy, (0.5 - top) * sy - 0.5]])
    return compose(box, to_aligned)


def crop_size(to_aligned: np.ndarray, crop, minimum: int, maximum: int) -> int:
    """Side of the square crop image that keeps about the photo's own resolution (one crop pixel
    per photo pixel), clamped to [minimum, maximum]."""
    _, _, height, width = crop_box(crop)
    native = max(height, width) / scale_of(to_aligned)
    return int(np.clip(round(native), minimum, maximum))


def face_width(to_aligned: np.ndarray, crop) -> float:
    """Width in photo pixels of the face's training crop (the size that `--min_face` checks)."""
    return crop_box(crop)[3] / scale_of(to_aligned)


# ------------------------------------------------------------------------------- warp and blend
def as_rgb(photo: np.ndarray) -> np.ndarray:
    """RGB uint8 view of a gray [H, W], RGB or RGBA photo (alpha dropped)."""
    if photo.ndim == 2:
        return np.repeat(photo[:, :, None], 3, axis=2)
    return np.ascontiguousarray(photo[:, :, :3])


def warp_crop(photo_rgb: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """The size×size crop that transform `m` (photo → crop pixels) selects, bilinear, the photo's
    edge replicated where the crop reaches outside it."""
    return cv2.warpAffine(photo_rgb, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def smoothstep(u: np.ndarray) -> np.ndarray:
    """3u² − 2u³ of u clipped to [0, 1]: 0 and 1 exactly at the ends, no kink."""
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def feather_mask(size: int, margin: float = 0.06, feather: float = 0.06) -> np.ndarray:
    """float32 [size, size] blend weights of a crop: 1 in the middle, falling smoothly (a
    smoothstep over `feather`·size) to exactly 0 at `margin`·size from the crop's edges, so
    the pasted change fades out before the crop's border."""
    t = (np.arange(size, dtype=np.float64) + 0.5) / size
    edge = np.minimum(t, 1.0 - t)  # distance to the nearest border, in crop widths
    ramp = smoothstep((edge - margin) / max(feather, 1e-6))
    return np.outer(ramp, ramp).astype(np.float32)


def footprint(m: np.ndarray, size: int, height: int, width: int):
    """The photo's integer box (x0, y0, x1, y1), exclusive ends, that holds the crop square of
    transform `m` (photo → crop), clipped to the photo; None when they do not overlap."""
    corners = apply(invert(m), [[-0.5, -0.5], [size - 0.5, -0.5], [-0.5, size - 0.5], [size - 0.5, size - 0.5]])
    x0, y0 = np.floor(corners.min(0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    return None if x0 >= x1 or y0 >= y1 else (int(x0), int(y0), int(x1), int(y1))


def paste_change(photo: np.ndarray, change: np.ndarray, m: np.ndarray, mask: np.ndarray,
                 head=None):
    """Adds the crop-space `change` (float32 [s, s, 3], edited − crop, RGB), weighted by `mask`
    ([s, s], in [0, 1]), to `photo` (uint8 gray [H, W], RGB or RGBA), both warped back by the
    inverse of `m` (photo → crop), and then multiplied by the photo-space weights of `head`
    (a `HeadMask`; None: no gate). Returns (new photo, boolean [H, W] region where the warped
    mask times the head weight is positive).

    Outside that region the result is the input bit for bit: only the box around the crop's
    footprint is recomputed, and in it the added amount is the bilinear warp of mask·change,
    which is exactly 0 wherever the warped mask is 0 (its 4 source pixels all have weight 0),
    times the head weight, exactly 0 where that is 0; uint8 + 0.0 saturates back to the same
    uint8. A gray photo takes the change's luma (BT.601, as cv2); the alpha of an RGBA photo is kept."""
    if not np.all(np.isfinite(change)):
        raise ValueError("the change to paste holds NaN or Inf")
    height, width = photo.shape[:2]
    out = photo.copy()
    region = np.zeros((height, width), bool)
    box = footprint(m, change.shape[0], height, width)
    if box is None:
        return out, region
    x0, y0, x1, y1 = box
    shifted = compose(m, np.array([[1.0, 0.0, x0], [0.0, 1.0, y0]]))  # box pixels → crop pixels
    size = (x1 - x0, y1 - y0)
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    mask = mask.astype(np.float32)
    weighted = change.astype(np.float32) * mask[:, :, None]
    alpha = cv2.warpAffine(mask, shifted, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    delta = cv2.warpAffine(weighted, shifted, size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if head is not None:
        # gated in photo pixels, after the warp: a bilinear warp of the gate could leak past its edge
        gate = head.within(box)
        alpha, delta = alpha * gate, delta * gate[:, :, None]
    old = photo[y0:y1, x0:x1]
    if photo.ndim == 2:
        new = cv2.add(old, cv2.cvtColor(delta, cv2.COLOR_RGB2GRAY), dtype=cv2.CV_8U)  # rounds, saturates
        out[y0:y1, x0:x1] = new
    else:
        new = cv2.add(np.ascontiguousarray(old[:, :, :3]), delta, dtype=cv2.CV_8U)
        out[y0:y1, x0:x1, :3] = new
    region[y0:y1, x0:x1] = alpha > 0
    return out, region


# ------------------------------------------------------------------------------ faces and dlib
@dataclasses.dataclass
class Face:
    """One detected face: `box` (left, top, right, bottom) in photo pixels, `points` [k, 2]
    landmarks in photo pixels and `template` [k, 2] where those points sit in CelebA's aligned
    178×218 photo (alignment fits one to the other); `landmarks5` CelebA's 5 points (lefteye,
    righteye, nose, leftmouth, rightmouth) in photo pixels when the detector gives them."""

    box: tuple[float, float, float, float]
    points: np.ndarray
    template: np.ndarray
    landmarks5: np.ndarray | None = None  # CelebA's 5 points in photo pixels, where known

    def to_aligned(self) -> np.ndarray:
        """The photo → aligned-frame similarity transform of this face."""
        return similarity_transform(self.points, self.template)


def celeba_face(landmarks10) -> Face:
    """A Face from 5 CelebA landmarks (10 numbers as in a row of list_landmarks_align_celeba.txt:
    lefteye x y, righteye, nose, leftmouth, rightmouth) in some photo's pixels, aligned as CelebA
    was: the eyes and the mouth centre onto CELEBA_ALIGN_TARGETS."""
    p = np.asarray(landmarks10, np.float64).reshape(5, 2)
    lo, hi = p.min(0), p.max(0)
    points = np.array([p[0], p[1], (p[3] + p[4]) / 2])
    return Face((lo[0], lo[1], hi[0], hi[1]), points, CELEBA_ALIGN_TARGETS, p)


INSTALL_HINT = 'face detection needs dlib: pip install -e ".[faces]" (dlib-bin and face-recognition-models)'


SHAPE_MODELS = {68: "shape_predictor_68_face_landmarks.dat", 5: "shape_predictor_5_face_landmarks.dat"}


def shape_model_path(points: int = 68) -> str:
    """Path of dlib's 68- or 5-point shape model inside the face-recognition-models package,
    found without importing the package (its __init__ needs pkg_resources, gone from new
    setuptools)."""
    if points not in SHAPE_MODELS:
        raise ValueError(f"dlib shape models have 68 or 5 points, not {points}")
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{INSTALL_HINT} (face_recognition_models is not installed)")
    path = os.path.join(list(spec.submodule_search_locations)[0], "models", SHAPE_MODELS[points])
    if not os.path.isfile(path):
        raise RuntimeError(f"{INSTALL_HINT} ({path} is missing)")
    return path


class DlibDetector:
    """dlib's HOG frontal-face detector and a shape predictor (68 points by default, or 5; both
    from the face-recognition-models package). Detection runs on a copy scaled to at most
    `max_side` pixels (upsampled once when that copy is at most `upsample_below` pixels on its
    long side, so faces from ~40 px are found); landmarks are fitted on the full photo."""

    def __init__(self, points: int = 68, max_side: int = 1024, upsample_below: int = 640):
        try:
            import dlib  # optional (the "faces" extra): without it, a message says how to install it
        except ImportError as e:
            raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
        self.dlib = dlib
        self.points = points
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(shape_model_path(points))
        self.max_side, self.upsample_below = max_side, upsample_below

    def detect_boxes(self, rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
        """Face boxes (left, top, right, bottom) in the photo's pixels, left to right."""
        long_side = max(rgb.shape[:2])
        f = min(1.0, self.max_side / long_side)
        small = rgb if f == 1.0 else cv2.resize(rgb, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        upsample = 1 if max(small.shape[:2]) <= self.upsample_below else 0
        rects = self.detector(np.ascontiguousarray(small), upsample)
        boxes = [(r.left() / f, r.top() / f, (r.right() + 1) / f, (r.bottom() + 1) / f) for r in rects]
        return sorted(boxes, key=lambda b: b[0])

    def landmarks(self, rgb: np.ndarray, box) -> Face:
        """The landmarks of the face in `box`, as a Face (see the TEMPLATE_DLIB3 comment)."""
        d = self.dlib
        rect = d.rectangle(int(round(box[0])), int(round(box[1])), int(round(box[2])) - 1, int(round(box[3])) - 1)
        shape = self.predictor(rgb, rect)
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(shape.num_parts)], np.float64)
        box = tuple(float(v) for v in box)
        if self.points == 68:
            # 36-41 the image-left eye, 42-47 the image-right eye, 30 the nose tip, 48/54 mouth corners
            five = np.array([p[36:42].mean(0), p[42:48].mean(0), p[30], p[48], p[54]])
            face = celeba_face(five.ravel())
            return Face(box, face.points, face.template, five)
        # 5-point order: 0-1 the image-right eye's corners, 2-3 the image-left eye's, 4 the nose base
        points = np.array([p[2:4].mean(0), p[0:2].mean(0), p[4]])
        return Face(box, points, TEMPLATE_DLIB3)

    def __call__(self, rgb: np.ndarray) -> list[Face]:
        """Every face in an RGB photo, left to right."""
        rgb = np.ascontiguousarray(rgb)
        return [self.landmarks(rgb, b) for b in self.detect_boxes(rgb)]


CROP_CORNERS = np.array([[3.0, 26.0], [173.0, 26.0], [3.0, 196.0], [173.0, 196.0]])  # default crop


def measure(folder: str) -> None:
    """Cross-checks detection + alignment on already aligned 178×218 CelebA photos: where the
    detected points land (vs TEMPLATE_CELEBA5 and TEMPLATE_DLIB3) and how far the crop the
    alignment picks is from CelebA's own (mean distance of the 4 crop corners, aligned pixels)."""
    paths = sorted(glob.glob(os.path.join(folder, "*.jpg")))
    for points in (68, 5):
        det = DlibDetector(points)
        found, missed, crop_err = [], [], []
        for path in paths:
            faces_ = det(as_rgb(read_photo(path)[0]))
            if not faces_:
                missed.append(os.path.basename(path))
                continue
            face = max(faces_, key=lambda f: f.box[2] - f.box[0])
            found.append(face)
            crop_err.append(np.linalg.norm(apply(face.to_aligned(), CROP_CORNERS) - CROP_CORNERS, axis=1).mean())
        print(f"dlib {points}-point: face found in {len(found)} of {len(paths)} photos "
              f"(missed: {', '.join(missed) or 'none'})")
        if not found:
            continue
        if points == 68:
            pts, template = np.array([f.landmarks5 for f in found]), TEMPLATE_CELEBA5
            names = ("left eye", "right eye", "nose tip", "left mouth", "right mouth")
        else:
            pts, template = np.array([f.points for f in found]), TEMPLATE_DLIB3
            names = ("left eye", "right eye", "nose base")
        err = np.linalg.norm(pts - template, axis=2)
        for name, mu, sd, e in zip(names, pts.mean(0), pts.std(0), err.mean(0)):
            print(f"  {name:11s} mean ({mu[0]:6.2f}, {mu[1]:6.2f})  std ({sd[0]:.2f}, {sd[1]:.2f})  "
                  f"mean distance to the template {e:.2f} px")
        print(f"  all points: mean distance to the template {err.mean():.2f} px; the crop's corners are "
              f"{np.mean(crop_err):.2f} px (max {np.max(crop_err):.2f}) from CelebA's own crop")

