"""Identity preservation: does the person stay recognisable after an edit?

M-AAE claims that its edits keep the face's identity: the identity loss (paper §3.4, Eq. 5) pulls
F_ID(G(x, δ)) towards F_ID(x), so an edited face should still be the same person. This module
measures that claim the way face verification does: the cosine similarity of face embeddings of
an image before and after the edit,

    identity_similarity(x, y) = <e(x), e(y)> / (|e(x)| |e(y)|),

computed by a face-recognition network that is INDEPENDENT of training (the model never saw its
gradients, so it cannot have learnt to satisfy it):

- `DlibEmbedder` (the default): dlib's ResNet face descriptor (dlib_face_recognition_resnet_model_v1,
  128-D, 99.38 % on LFW), on 150×150 chips aligned by dlib's 5-point landmarks, both models from the
  face-recognition-models package.
- `TrainingEmbedder` (`training`): the run's own F_ID (models/identity.py), globally
  average-pooled, as a labelled fallback where dlib is not installed. It is the network of the training loss, so it is
  not independent, and its `name` says which weights it has (random weights are not a recogniser).

Scale of the dlib figures (measured on a 32-photo CelebA sample): dlib's raw
descriptors have norm ≈ 1.5 and share a large common component, so different people are far from
orthogonal: their cosine is 0.84 on average (max 0.92) whether computed by dlib's standard
detector pipeline on the full 178×218 photos or by this module on 128 px crops; dlib's own
"same person" threshold (Euclidean distance 0.6 between raw descriptors) is cosine ≈ 0.92. An
image and its JPEG-quality-30 copy score 0.98 at 128 px (0.96 at 64 px). `separation_check`
and `python -m maae_tf.face_identity --images=DIR` print these figures for any folder.

Inputs are face crops as the model sees them: float [N, S, S, 3] in [-1, 1], S ≥ 32, cropped as
CelebA's aligned photos are cropped for training (config crop, by default 170×170 at (26, 3) of
the 178×218 photo). The crops are face-centred, so no face detector runs: dlib's landmarks are
fitted on a fixed box (`LANDMARK_BOX`), which never fails and is deterministic.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import sys
import time

import cv2
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf.config import base_config
from maae_tf.data.faces import INSTALL_HINT, shape_model_path
from maae_tf.files import read_image, write_text_atomic
from maae_tf.model.networks import build_identity
from maae_tf.model.spec import ModelSpec


EMBEDDERS = ("auto", "dlib", "training")
# old name -> current name, still accepted: "fid" (the run's F_ID) read as Fréchet Inception Distance
RENAMED = {"fid": "training"}
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"

# dlib works on crops enlarged (cubic) or shrunk (area) to this side: the face box is then about
# 135 px wide, so get_face_chip cuts the 150 px chip (face ≈ 100 px of it) without enlarging.
DLIB_SIDE = 256
# Where dlib's 5-point shape predictor is fitted, as (left, top, right, bottom) fractions of the
# CelebA training crop. It is the mean box of dlib's own HOG face detector on the 32 photos of
# the 32-photo CelebA sample cropped and enlarged to 256 px (found on 30 of 32; box std 0.013-0.033):
# the predictor was trained on that detector's boxes. On 128 px crops the landmarks it gives are
# 0.15 px (mean; max 0.34) from those fitted on each crop's own detection, and the embeddings have
# cosine 0.998 with dlib's standard pipeline on the full photos. A box the size of the whole crop
# misplaces the landmarks by 26 px, the cosine with the standard pipeline drops to 0.88 and
# self vs other people separates worse (AUC 0.95 instead of 1.0 on the 32 photos).
LANDMARK_BOX = (0.24, 0.36, 0.77, 0.88)
CHIP_SIZE, CHIP_PADDING = 150, 0.25  # what dlib's ResNet expects (dlib.get_face_chip's defaults)


# ------------------------------------------------------------------------------------ embedders
def _as_batch(images) -> np.ndarray:
    """float32 [N, S, S, 3] from [N, S, S, 3] or one [S, S, 3] image in [-1, 1]."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-1] != 3 or x.shape[1] != x.shape[2] or x.shape[1] < 32:
        raise ValueError(f"need square RGB images [N, S, S, 3] (or one [S, S, 3]) with S >= 32, got {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be floats in [-1, 1] (the model's range), got dtype {x.dtype}; "
                         "for uint8 pixels pass pixels / 127.5 - 1")
    return x.astype(np.float32, copy=False)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """[-1, 1] floats → uint8 pixels (rounded, clipped)."""
    return np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)


def enlarged(image: np.ndarray) -> np.ndarray:
    """One float [S, S, 3] image in [-1, 1] as the contiguous uint8 [DLIB_SIDE, DLIB_SIDE, 3]
    image dlib's landmarks are fitted on (cubic when enlarging, area when shrinking)."""
    pixels = _to_uint8(image)
    interpolation = cv2.INTER_CUBIC if pixels.shape[0] < DLIB_SIDE else cv2.INTER_AREA
    return np.ascontiguousarray(cv2.resize(pixels, (DLIB_SIDE, DLIB_SIDE), interpolation=interpolation))


def landmark_rect(dlib, box=LANDMARK_BOX):
    """The dlib.rectangle of `box` (fractions of the crop) in an `enlarged` image."""
    left, top, right, bottom = (int(round(f * DLIB_SIDE)) for f in box)
    return dlib.rectangle(left, top, right - 1, bottom - 1)


def _unit_rows(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


class Embedder:
    """A face-embedding network. `name` says which network (and weights) it is; `embed(images)`
    maps float images [N, S, S, 3] (or one [S, S, 3]) in [-1, 1] to L2-normalised float64
    embeddings [N, D], deterministically."""

    name: str = "embedder"

    def embed(self, images) -> np.ndarray:
        raise NotImplementedError


@functools.lru_cache(maxsize=1)
def _dlib_models():
    """(dlib module, 5-point shape predictor, ResNet face recogniser), loaded once per process."""
    try:
        import dlib  # optional (the .[faces] extra) and slow to import: loaded on first use
    except ImportError as e:
        raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
    shape_path = shape_model_path(5)
    recognition_path = os.path.join(os.path.dirname(shape_path), RECOGNITION_MODEL)
    if not os.path.isfile(recognition_path):
        raise RuntimeError(f"{INSTALL_HINT} ({recognition_path} is missing)")
    return dlib, dlib.shape_predictor(shape_path), dlib.face_recognition_model_v1(recognition_path)


class DlibEmbedder(Embedder):
    """dlib's ResNet face descriptor (128-D) of face-centred crops.

    Each image is turned into uint8 RGB, resized to DLIB_SIDE px (cubic when enlarging, area when
    shrinking), dlib's 5-point landmarks are fitted on the fixed `box` (fractions of the crop;
    LANDMARK_BOX suits the CelebA training crop), dlib.get_face_chip aligns a 150×150 chip
    (padding 0.25) and the ResNet embeds it. RuntimeError with an install hint when dlib or the
    face-recognition-models package is missing."""

    name = "dlib_resnet_v1"

    def __init__(self, box=LANDMARK_BOX):
        self.dlib, self.predictor, self.recogniser = _dlib_models()
        self.rect = landmark_rect(self.dlib, box)

    def chip(self, image: np.ndarray) -> np.ndarray:
        """The aligned 150×150 uint8 chip of one float [S, S, 3] image in [-1, 1]."""
        big = enlarged(image)
        shape = self.predictor(big, self.rect)
        return self.dlib.get_face_chip(big, shape, size=CHIP_SIZE, padding=CHIP_PADDING)

    def embed(self, images) -> np.ndarray:
        x = _as_batch(images)
        if not len(x):
            return np.zeros((0, 128))
        chips = [self.chip(image) for image in x]
        return _unit_rows(np.array([np.array(d) for d in self.recogniser.compute_face_descriptor(chips)]))


def _training_name(identity) -> str:
    """What F_ID's weights are, for TrainingEmbedder.name (build_identity has rejected other sources)."""
    what = {"random": "random weights, not a face recogniser",
            "imagenet": "ImageNet VGG16 features, not trained on faces",
            "h5": identity.weights_path}[identity.source]
    return f"maae_tf F_ID (identity.source={identity.source}: {what})"


class TrainingEmbedder(Embedder):
    """The project's identity network F_ID (`model.networks.build_identity`: config.identity.source,
    weights_path, width, image_size), its block4_conv1 features globally average-pooled and
    L2-normalised. Images of another size are resized to config.image_size (bilinear,
    antialiased, as the data pipeline does). Not independent of training (it is the network of
    the ID loss, Eq. 5): a fallback, labelled by `name`."""

    def __init__(self, config, batch_size: int = 32):
        spec = ModelSpec.from_config(config)
        self.model = build_identity(spec.identity, spec.networks.image_size, spec.networks.width)
        self.image_size = int(config.image_size)
        self.batch_size = int(batch_size)
        self.name = _training_name(config.identity)

    def embed(self, images) -> np.ndarray:
        x = _as_batch(images)
        if x.shape[1] != self.image_size:
            x = tf.image.resize(x, [self.image_size, self.image_size], method="bilinear", antialias=True).numpy()
        pooled = [keras.ops.convert_to_numpy(keras.ops.mean(self.model(x[i:i + self.batch_size], training=False),
                                                            axis=(1, 2)))
                  for i in range(0, len(x), self.batch_size)]
        if not pooled:
            return np.zeros((0, self.model.output_shape[-1]))
        return _unit_rows(np.concatenate(pooled))


def current_name(kind: str) -> str:
    """`kind` (an identity network: EMBEDDERS) under its current name (RENAMED)."""
    return RENAMED.get(kind, kind)


@functools.cache
def _warn_renamed(old: str, new: str) -> None:
    logging.warning("identity network %r is deprecated: it is now called %r (the run's own F_ID)", old, new)


def embedder_kind(kind: str) -> str:
    """`current_name(kind)`, with a one-line deprecation warning (once a process) for an old name."""
    if kind in RENAMED:
        _warn_renamed(kind, RENAMED[kind])
    return current_name(kind)


def make_embedder(kind: str = "auto", config=None) -> Embedder:
    """"dlib" → DlibEmbedder (RuntimeError when dlib is missing); "training" → TrainingEmbedder(config);
    "auto" → dlib when it is installed, else TrainingEmbedder(config) with a warning; an old name
    (RENAMED) → its current one. ValueError for an unknown kind, or when F_ID is needed and
    `config` is None."""
    kind = embedder_kind(kind)
    if kind not in EMBEDDERS:
        raise ValueError(f"embedder must be one of {', '.join(EMBEDDERS)}, got {kind!r}")
    if kind == "dlib":
        return DlibEmbedder()
    if kind == "auto":
        try:
            return DlibEmbedder()
        except RuntimeError as e:
            if config is None:
                raise ValueError(f"dlib is not available ({e}) and no config was given for the F_ID "
                                 "fallback") from None
            embedder = TrainingEmbedder(config)
            logging.warning("identity similarity: dlib is not available (%s); falling back to %s, which "
                            "is not independent of training", e, embedder.name)
            return embedder
    if config is None:
        raise ValueError("embedder 'training' needs the run's config (its identity network settings)")
    return TrainingEmbedder(config)


# --------------------------------------------------------------------------------------- metric
def cosine_similarity(a, b) -> np.ndarray:
    """Row-wise cosine similarity [N] of two [N, D] arrays (clipped to [-1, 1]); NaN for a row
    where either vector is zero. ValueError when the shapes differ."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"need two [N, D] arrays of the same shape, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    dots = np.einsum("nd,nd->n", a, b)
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), np.nan)
    return np.clip(cos, -1.0, 1.0)


def identity_similarity(embedder: Embedder, before, after) -> np.ndarray:
    """The identity-preservation metric [N]: cosine of `embedder`'s embeddings of each image
    `before` the edit and `after` it (float images in [-1, 1]); 1 = same embedding."""
    return cosine_similarity(embedder.embed(before), embedder.embed(after))


def jpeg_copy(image: np.ndarray, quality: int) -> np.ndarray:
    """A uint8 RGB image after a round trip through JPEG at `quality` (OpenCV)."""
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"cannot JPEG-encode an image of shape {image.shape}")
    return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def separation_check(embedder: Embedder, images_uint8_list, jpeg_quality: int = 30) -> dict:
    """How well `embedder` tells a person from other people on face crops of DIFFERENT people
    (uint8 RGB, all the same size): each image against a JPEG-`jpeg_quality` copy of itself
    (same person, degraded) vs against every other image (other people).

    Returns num_images, jpeg_quality, self_similarity_mean / _min, other_similarity_mean / _max
    (over the N(N-1)/2 pairs), auc (probability that a random self pair scores above a random
    other pair, ties half), share_self_above_all_others (share of images whose self-similarity
    exceeds its similarity to every other image) and embedder (the name)."""
    images = [np.asarray(im) for im in images_uint8_list]
    if len(images) < 2:
        raise ValueError(f"separation_check needs at least 2 images of different people, got {len(images)}")
    if any(im.dtype != np.uint8 or im.ndim != 3 or im.shape[-1] != 3 for im in images):
        raise ValueError("separation_check takes uint8 RGB images [H, W, 3]")
    if len({im.shape for im in images}) > 1:
        raise ValueError(f"the images differ in size: {sorted({im.shape for im in images})}")
    to_float = lambda ims: np.stack(ims).astype(np.float32) / 127.5 - 1.0
    originals = embedder.embed(to_float(images))
    copies = embedder.embed(to_float([jpeg_copy(im, jpeg_quality) for im in images]))
    own = cosine_similarity(originals, copies)
    pairwise = _unit_rows(originals) @ _unit_rows(originals).T
    others = pairwise[np.triu_indices(len(images), 1)]
    np.fill_diagonal(pairwise, -np.inf)
    ranked = np.sort(others)
    below = np.searchsorted(ranked, own, side="left")
    ties = np.searchsorted(ranked, own, side="right") - below
    return {
        "num_images": len(images),
        "jpeg_quality": int(jpeg_quality),
        "self_similarity_mean": float(own.mean()),
        "self_similarity_min": float(own.min()),
        "other_similarity_mean": float(others.mean()),
        "other_similarity_max": float(others.max()),
        "auc": float((below + 0.5 * ties).sum() / (len(own) * len(others))),
        "share_self_above_all_others": float(np.mean(own > pairwise.max(axis=1))),
        "embedder": embedder.name,
    }


# ------------------------------------------------------------------------------------------ CLI
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_files(folder: str, limit: int) -> list[str]:
    """The first `limit` images (.jpg/.jpeg/.png, sorted) in `folder`, or in its img_align_celeba/
    when `folder` is a CelebA release root. FileNotFoundError when there are none."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{folder!r} is not a folder")
    inner = os.path.join(folder, "img_align_celeba")
    for candidate in (folder, inner):
        paths = sorted(p for p in glob.glob(os.path.join(candidate, "*"))
                       if p.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(p))
        if paths:
            return paths[:limit]
    raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder!r}")


def read_crop(path: str, size: int, config) -> np.ndarray:
    """The training crop of an aligned CelebA photo (config.crop_*, rounded as the data pipeline
    rounds them), resized to size×size (area when shrinking, bilinear when enlarging), uint8 RGB.
    ValueError naming the file when it is not a readable image (a JPEG without its start or end
    marker, i.e. empty or truncated, included)."""
    if path.lower().endswith((".jpg", ".jpeg")):
        with open(path, "rb") as f:
            data = f.read()
        if not data.startswith(b"\xff\xd8\xff") or b"\xff\xd9" not in data[-64:]:
            raise ValueError(f"{path}: corrupt JPEG (empty, truncated or not a JPEG: missing the start "
                             "marker FFD8FF or the end marker FFD9)")
    rgb = read_image(path)
    h, w = rgb.shape[:2]
    top, left = int(np.round(config.crop_top * h)), int(np.round(config.crop_left * w))
    height, width = int(np.round(config.crop_height * h)), int(np.round(config.crop_width * w))
    crop = rgb[top:top + height, left:left + width]
    interpolation = cv2.INTER_AREA if min(crop.shape[:2]) >= size else cv2.INTER_LINEAR
    return cv2.resize(crop, (size, size), interpolation=interpolation)


def check_folder(folder: str, limit: int, image_size: int, jpeg_quality: int, embedder: str = "auto",
                 identity_source: str = "imagenet", identity_weights_path: str = "") -> dict:
    """separation_check on the crops of the photos in `folder`; adds image_size and seconds."""
    if limit < 2 or image_size < 32 or not 1 <= jpeg_quality <= 100:
        raise ValueError(f"need --limit >= 2, --image_size >= 32 and 1 <= --jpeg_quality <= 100, got "
                         f"{limit}, {image_size} and {jpeg_quality}")
    config = base_config()
    config.image_size = image_size
    config.identity.source = identity_source
    config.identity.weights_path = identity_weights_path
    paths = image_files(folder, limit)
    if len(paths) < 2:
        raise FileNotFoundError(f"{folder!r} holds 1 image; the check compares at least 2 people")
    crops = [read_crop(p, image_size, config) for p in paths]
    model = make_embedder(embedder, config)
    start = time.perf_counter()
    figures = separation_check(model, crops, jpeg_quality)
    figures.update(image_size=image_size, seconds=time.perf_counter() - start)
    return figures


def table(figures: dict) -> str:
    """The figures of `check_folder` as a short text table."""
    f = figures
    n = 2 * f["num_images"]
    rows = [
        (f"self vs JPEG q{f['jpeg_quality']}",
         f"mean {f['self_similarity_mean']:.4f}   min {f['self_similarity_min']:.4f}"),
        ("other people", f"mean {f['other_similarity_mean']:.4f}   max {f['other_similarity_max']:.4f}"),
        ("AUC (self > other)", f"{f['auc']:.4f}"),
        ("self above all others", f"{100 * f['share_self_above_all_others']:.1f} % of images"),
        ("time", f"{f['seconds']:.2f} s for {n} embeddings ({n / f['seconds']:.1f} images/s)"),
    ]
    head = f"identity separation: {f['num_images']} images at {f['image_size']} px, embedder {f['embedder']}"
    return "\n".join([head] + [f"  {label:<23s}{value}" for label, value in rows])


def check_command(images: str, out: str | None, *args) -> None:
    """`python -m maae_tf.face_identity`: prints `check_folder(images, *args)` and writes it to the
    JSON file `out` when given; a bad input ends in one `error:` line and exit 2."""
    try:
        figures = check_folder(images, *args)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(table(figures))
    if out:
        write_text_atomic(out, json.dumps(figures, indent=2))
        print(f"wrote {out}")
