"""Edit the faces in your own photos.

    python -m maae_tf.edit PHOTO [PHOTO ...] --model=BASE_OR_WORKDIR --delta=3 [-o OUT]
    python -m maae_tf.edit PHOTO --model=export/face_edit --attr blond_hair=5 --attr mouth_open=2
    python -m maae_tf.edit PHOTO --server=HOST:8500 --model=face_edit --delta=3
    python -m maae_tf.edit PHOTO --model=export/mouth_open --sweep=-5:5:11 -o sheets/

Per photo: detect every face (dlib HOG), find its landmarks (dlib's 68 points → CelebA's 5),
align each face to CelebA's aligned template with a similarity transform and crop it as the
model's training crop, edit it with the model's `edit_detail` (the crop's resolution is kept;
δ = 0 changes nothing), warp the change back and add it under the face's head mask (the selfie
segmenter's face + hair, else a landmark prior; grown and feathered). Pixels outside the blended
region (the background) are the input's, bit for bit. The output keeps the photo's resolution,
upright orientation (EXIF applied) and format. An output that would replace an input photo is
refused before anything is written, unless --overwrite. See docs/edit.md.

--model is a SavedModel base folder (highest version), one version folder (saved_model.pb) or a
training workdir (config.json). With --server, the model is TF Serving's model NAME: --model_name
if given, else --model.

Exit codes: 0 every photo written; 2 a photo was unreadable, had no face, or only faces too small
(nothing is written for it; the others are still processed), an output would replace an input
photo (nothing is written at all) or the arguments are wrong; 1 the model or the server failed.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import numpy as np

from maae_tf import attributes

from maae_tf.data import faces
from maae_tf.photos import heads
from maae_tf.files import PHOTO_SUFFIXES, read_photo, write_photo
from maae_tf.serving.client import ServingError

MIN_CROP = 64        # smallest crop image sent to the model (pixels)
MAX_CROP = 1024      # largest (a bigger face is downscaled into it)
EXIT_BAD_INPUT, EXIT_MODEL = 2, 1


class BadInput(Exception):
    """A problem with one photo: reported, that photo skipped, the others still processed."""


# ------------------------------------------------------------------------------------- models
def _version_dir(base: str) -> str:
    """The SavedModel folder `base` names: itself (saved_model.pb) or its highest integer version."""
    if os.path.isfile(os.path.join(base, "saved_model.pb")):
        return base
    versions = [int(n) for n in os.listdir(base) if n.isdigit() and os.path.isdir(os.path.join(base, n))]
    if not versions:
        raise ValueError(f"{base}: not a workdir (no config.json), a SavedModel (no saved_model.pb) "
                         f"or a model base (no integer version folders)")
    return os.path.join(base, str(max(versions)))


class LocalModel:
    """An exported SavedModel or a training workdir, run in this process."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.tf = tf
        if not os.path.isdir(path):
            raise ValueError(f"{path}: no such model folder")
        if os.path.isfile(os.path.join(path, "config.json")):
            from maae_tf.model.editor import Editor, load_runs

            self.source = f"workdir {path}"
            editor = Editor(*load_runs([path]))
            self._edit = lambda x, d: editor.edit_detail(tf.constant(x), tf.constant(d))["images"].numpy()
            meta = {k: v.numpy() for k, v in editor.metadata().items()}
        else:
            version = _version_dir(path)
            self.source = f"SavedModel {version}"
            self._loaded = tf.saved_model.load(version)
            sig = self._loaded.signatures["edit_detail"]
            self._edit = lambda x, d: sig(images=tf.constant(x), delta=tf.constant(d))["images"].numpy()
            meta = {k: v.numpy() for k, v in self._loaded.signatures["metadata"]().items()}
        self.attributes = [a.decode() if isinstance(a, bytes) else str(a) for a in np.ravel(meta["attributes"])]
        self.delta_max = np.ravel(meta["delta_max"]).astype(float).tolist()
        self.image_size = int(meta["image_size"])
        self.crop = np.ravel(meta["crop"]).astype(float).tolist()

    def edit(self, crops: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """edit_detail of uint8 [N, s, s, 3] crops with δ [N, K]."""
        d = delta[:, 0] if len(self.attributes) == 1 else delta
        return self._edit(crops, d.astype(np.float32))


class ServedModel:
    """A model behind TF Serving, through maae_tf.serving.client: gRPC at `server` (HOST:8500),
    or its REST API when `rest` (`server` is then a URL, http://HOST:8501)."""

    def __init__(self, server: str, name: str, timeout: float = 30.0, rest: bool = False):
        from maae_tf.serving.client import Client, RestClient

        self.source = f"model {name!r} at {server}"
        self.client = (RestClient if rest else Client)(server, name, timeout=timeout)
        meta = self.client.metadata()
        self.attributes, self.delta_max = meta["attributes"], meta["delta_max"]
        self.image_size, self.crop = meta["image_size"], meta["crop"]

    def edit(self, crops: np.ndarray, delta: np.ndarray) -> np.ndarray:
        d = delta[:, 0] if len(self.attributes) == 1 else delta
        return self.client.edit(crops, d, signature="edit_detail")


# ------------------------------------------------------------------------------------ options
@dataclasses.dataclass
class Options:
    """What to edit and how: the flags of `python -m maae_tf.edit` (maae_tf/edit.py says each)."""
    photos: list[str]
    model: str | None = None
    server: str | None = None
    rest: str | None = None
    model_name: str | None = None
    timeout: float = 30.0
    delta: float | None = None
    attr: list[str] = dataclasses.field(default_factory=list)
    face: list[int] | None = None
    sweep: str | None = None
    landmarks: int = 68
    min_face: int = 64
    format: str = "keep"
    quality: int = 95
    out: str = "edited"
    overwrite: bool = False
    timings: bool = False


def check_options(options: Options) -> None:
    """The options a command line must give (ValueError naming them): photos, --model, and an edit
    (--delta, --attr NAME=DELTA or --sweep) with finite strengths (`check_strengths`)."""
    if not options.photos:
        raise ValueError("give the photos to edit: python -m maae_tf.edit PHOTO [PHOTO ...] --model=... --delta=3")
    if not options.model:
        raise ValueError("give --model=EXPORT_OR_WORKDIR (or --server=HOST:8500 with --model=NAME)")
    if options.delta is None and not options.attr and not options.sweep:
        raise ValueError("give --delta, --attr NAME=DELTA or --sweep")
    check_strengths(options.delta, options.attr)


def parse_sweep(text: str) -> np.ndarray:
    """"-5:5:11" → 11 strengths from -5 to 5."""
    try:
        lo, hi, n = text.split(":")
        values = np.linspace(float(lo), float(hi), int(n))
    except ValueError:
        raise ValueError(f"--sweep must be LO:HI:N (e.g. -5:5:11), got {text!r}") from None
    if not 1 <= len(values) <= 64 or not np.all(np.isfinite(values)):
        raise ValueError(f"--sweep needs 1 to 64 finite strengths, got {text!r}")
    return values


def check_strengths(delta, attrs) -> None:
    """The edit strengths given on the command line, checked before the model loads: --delta a
    finite number, each --attr NAME=DELTA with a finite number (the names need the model:
    `resolve_deltas`). ValueError naming the flag."""
    if delta is not None and not np.isfinite(delta):
        raise ValueError(f"--delta must be a finite number, got {delta}")
    for item in attrs:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--attr must be NAME=DELTA, got {item!r}")
        try:
            number = float(value)
        except ValueError:
            raise ValueError(f"--attr {item!r}: {value!r} is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"--attr {item!r}: the strength must be a finite number, got {value}")


def resolve_deltas(model_attributes, delta, attrs) -> tuple[np.ndarray, list[int]]:
    """δ per model attribute ([K]) from --delta (the default of every attribute, 0 when absent)
    and --attr NAME=DELTA; also the columns named by --attr (what --sweep varies; all when none)."""
    columns = {a: k for k, a in enumerate(model_attributes)}
    d = np.full(len(model_attributes), 0.0 if delta is None else float(delta), np.float32)
    named = []
    for item in attrs:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--attr must be NAME=DELTA, got {item!r}")
        key = attributes.snake(name)  # raises with the valid names
        if key not in columns:
            raise ValueError(f"--attr {name}: the model edits {', '.join(model_attributes)}, not {key}")
        try:
            d[columns[key]] = float(value)
        except ValueError:
            raise ValueError(f"--attr {item!r}: {value!r} is not a number") from None
        named.append(columns[key])
    return d, (named or list(range(len(model_attributes))))


def output_path(photo: str, fmt: str, output: str, n_photos: int, out_format: str = "keep") -> str:
    """Where the edit of `photo` goes: `output` itself when it is a file name with a suffix and
    one photo is edited, else `output/<photo's name>` with the suffix of the photo's format (or
    of `out_format` when it is not "keep")."""
    stem, suffix = os.path.splitext(os.path.basename(photo))
    if out_format != "keep":
        suffix = "." + out_format
    else:
        suffix = PHOTO_SUFFIXES.get(fmt, suffix.lower() or ".png")
    if n_photos == 1 and os.path.splitext(output)[1] and not os.path.isdir(output):
        return output
    return os.path.join(output, stem + suffix)


def photo_format(path: str) -> str | None:
    """PIL's format name of an image file from its header alone, None when it does not open
    (reading it later reports why)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.format or ""
    except Exception:  # any unreadable file: edit_photo's read names the problem
        return None


class InputFiles:
    """The input photos by file identity (device, inode), so an output reached through another
    path (relative, `..`, a symlink, a hard link) is still recognised as an input."""

    def __init__(self, photos):
        self.by_id = {}
        for photo in photos:
            try:
                st = os.stat(photo)
            except OSError:
                continue  # a missing photo: its read reports it
            self.by_id.setdefault((st.st_dev, st.st_ino), photo)

    def replaced_by(self, out: str) -> str | None:
        """The input photo that writing `out` would replace, or None."""
        try:
            st = os.stat(out)
        except OSError:
            return None
        return self.by_id.get((st.st_dev, st.st_ino))


def clobber_message(out: str, photo: str) -> str:
    return (f"{out}: the output would overwrite the input photo {photo}; nothing written "
            f"(choose another -o, or pass --overwrite to replace it)")


def clobbered_inputs(args, inputs: InputFiles) -> list[str]:
    """One message per photo whose output would replace an input photo (none with --overwrite);
    the output is named as `edit_photo` will name it, from the format in the photo's header.
    (--sweep alone writes only contact sheets, whose names depend on the faces found: `edit_photo`
    checks those before writing them.)"""
    if args.overwrite or (args.delta is None and not args.attr):
        return []
    messages = []
    for photo in args.photos:
        fmt = photo_format(photo)
        out = None if fmt is None else output_path(photo, fmt, args.out, len(args.photos), args.format)
        hit = None if out is None else inputs.replaced_by(out)
        if hit is not None:
            messages.append(clobber_message(out, hit))
    return messages


# --------------------------------------------------------------------------- one face, step by step
# edit_photo and the web demo (maae_tf.photos.demo) share these, so that the demo's download is the
# file this command writes for the same δ, bit for bit.
def read_input(path: str):
    """(photo, format) of an input photo; BadInput naming it when it does not read."""
    try:
        return read_photo(path)
    except ValueError as e:
        raise BadInput(str(e)) from None


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


# ---------------------------------------------------------------------------------- the work
def contact_sheet(crops: list[np.ndarray], values, cell: int = 160) -> np.ndarray:
    """One row of crops (uint8 RGB) resized to cell×cell, each labelled with its δ."""
    import cv2

    row = []
    for crop, v in zip(crops, values):
        im = cv2.resize(crop, (cell, cell), interpolation=cv2.INTER_AREA)
        label = np.full((22, cell, 3), 255, np.uint8)
        cv2.putText(label, f"d={v:+.2f}", (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        row.append(np.concatenate([im, label], 0))
    return np.concatenate(row, 1)


def edit_photo(path: str, model, detector, args, delta, sweep, columns, log=print, outputs=None,
               masker=None, inputs=None) -> dict:
    """Edits one photo; returns a summary (faces, region, changed-outside count, mask sources,
    times in ms). `masker`: a heads.HeadMasker (the blend's head mask; needed when `delta` is
    given); `inputs`: the run's InputFiles, which no file written here may replace unless
    --overwrite. Raises BadInput for an unreadable photo, no face, only faces that are too small,
    no head mask, an output that would replace an input photo, or an output path already written
    in this run (`outputs`: {output path: photo})."""
    t = {"read": 0.0, "detect": 0.0, "align": 0.0, "mask": 0.0, "edit": 0.0, "blend": 0.0, "check": 0.0,
         "write": 0.0}
    clock = time.perf_counter()

    def lap(stage):
        nonlocal clock
        now = time.perf_counter()
        t[stage] += (now - clock) * 1000
        clock = now

    photo, fmt = read_input(path)
    rgb = faces.as_rgb(photo)
    out = output_path(path, fmt, args.out, len(args.photos), args.format)
    outputs = {} if outputs is None else outputs
    if os.path.abspath(out) in outputs:
        raise BadInput(f"{path}: its output {out} would overwrite the edit of {outputs[os.path.abspath(out)]} "
                       f"(same name); edit it in a separate run")
    outputs[os.path.abspath(out)] = path
    if photo.ndim == 3 and photo.shape[2] == 4 and os.path.splitext(out)[1].lower() in (".jpg", ".jpeg"):
        raise BadInput(f"{path}: has transparency, which {out} (JPEG) cannot store; use --format=png or webp")
    lap("read")
    found = detector(rgb)
    lap("detect")
    if not found:
        raise BadInput(no_face_message(path, photo) + "; nothing written")
    chosen = list(range(len(found))) if args.face is None else args.face
    for i in chosen:
        if not 0 <= i < len(found):
            raise BadInput(f"{path}: --face {i} but {len(found)} face(s) found (0-based, left to right)")
    result, region, edited, skipped = photo, np.zeros(photo.shape[:2], bool), [], []
    sheets, sources = [], []
    for i in chosen:
        face = found[i]
        aligned = align_face(rgb, face, model.crop, with_crop=False)
        if aligned.width < args.min_face:
            skipped.append(i)
            log(too_small_message(path, i, aligned.width, args.min_face))
            continue
        aligned = align_face(rgb, face, model.crop)
        crop = aligned.crop
        lap("align")
        if delta is not None:
            try:
                head = head_mask(masker, rgb, face, path, i)
            except BadInput as e:
                raise BadInput(f"{e}; nothing written") from None
            sources.append(head.source)
            lap("mask")
            new = model.edit(crop[None], delta[None])[0]
            lap("edit")
            result, r = blend_edit(result, aligned, new, head)
            region |= r
            lap("blend")
        if sweep is not None:
            d = np.zeros((len(sweep), len(model.attributes)), np.float32)
            d[:, columns] = np.asarray(sweep, np.float32)[:, None]
            crops = model.edit(np.repeat(crop[None], len(sweep), 0), d)
            lap("edit")
            sheets.append((i, contact_sheet(list(crops), sweep)))
        edited.append(i)
    if not edited:
        raise BadInput(all_too_small_message(path, len(chosen)) + "; nothing written")
    changed_outside = int((np.any((result != photo).reshape(*photo.shape[:2], -1), axis=-1) & ~region).sum())
    lap("check")
    files = ([(out, result, args.quality)] if delta is not None else []) + [
        (os.path.splitext(out)[0] + f"_face{i}_sweep.png", sheet, 95) for i, sheet in sheets]
    # sheet names are known only now: every file is checked before the first is written
    for target, _, _ in files:
        hit = None if inputs is None or args.overwrite else inputs.replaced_by(target)
        if hit is not None:
            raise BadInput(clobber_message(target, hit))
    for target, image, quality in files:
        write_photo(target, image, quality)
    lap("write")
    return {"faces": len(found), "edited": edited, "skipped": skipped, "written": [f[0] for f in files],
            "region": int(region.sum()), "pixels": int(region.size), "changed_outside": changed_outside,
            "sources": sources, "ms": t, "format": fmt}


def load_model(args):
    """The LocalModel or ServedModel the arguments name (--server: gRPC; --rest, where the command
    has it: TF Serving's REST API)."""
    if args.server:
        return ServedModel(args.server, args.model_name or args.model, args.timeout)
    if args.rest:
        return ServedModel(args.rest, args.model_name or args.model, args.timeout, rest=True)
    return LocalModel(args.model)


def warm_up(model) -> None:
    """One call before the photos: loads and warms the graph, so per-photo times are steady; and
    RuntimeError for a model whose edit_detail does not give back an image of its size."""
    warm = model.edit(np.zeros((1, model.image_size, model.image_size, 3), np.uint8),
                      np.zeros((1, len(model.attributes)), np.float32))
    if warm.shape != (1, model.image_size, model.image_size, 3):
        raise RuntimeError(f"{model.source}: edit_detail returned shape {warm.shape} for a "
                           f"{model.image_size}² image; is this a maae_tf export?")


def default_segmenter(log=print):
    """The cached selfie segmenter as a head-region mask source, or None after a one-line note
    when it is not cached (or damaged): edit never downloads; the landmark prior is used instead."""
    from maae_tf.data.masks import make_source

    try:
        return make_source("segmenter:region=landmarks")
    except (OSError, RuntimeError, ValueError) as e:  # ModelNotCached is an OSError
        log(f"note: {e}; blending under the landmark prior (head ellipses from the 5 landmarks) instead")
        return None


def edit_photos(args: Options, detector=None, log=print, masker=None) -> int:
    """`python -m maae_tf.edit`: edits the photos of `args`, returns the exit code (module
    docstring). `detector` (a callable RGB → [faces.Face]) replaces dlib in tests, `masker` (a
    heads.HeadMasker) the default one (the cached segmenter, else the landmark prior)."""
    err = lambda msg: print(f"error: {msg}", file=sys.stderr)  # noqa: E731
    try:  # the flags first: a bad strength is refused before the model loads
        check_options(args)
    except ValueError as e:
        err(e)
        return EXIT_BAD_INPUT
    # every output is checked against every input before the model loads and anything is written
    inputs = InputFiles(args.photos)
    clobbered = clobbered_inputs(args, inputs)
    if clobbered:
        for message in clobbered:
            err(message)
        return EXIT_BAD_INPUT
    try:
        sweep = parse_sweep(args.sweep) if args.sweep else None
        if detector is None:
            detector = faces.DlibDetector(args.landmarks)
    except (ValueError, RuntimeError) as e:
        err(e)
        return EXIT_BAD_INPUT
    start = time.perf_counter()
    try:
        model = load_model(args)
        delta, columns = resolve_deltas(model.attributes, args.delta, args.attr)
        warm_up(model)
    except ValueError as e:
        err(e)
        return EXIT_BAD_INPUT
    except Exception as e:  # a model that does not load or a server that does not answer
        err(f"{type(e).__name__}: {e}")
        return EXIT_MODEL
    log(f"model: {model.source} ({', '.join(model.attributes)}; {model.image_size} px; loaded in "
        f"{time.perf_counter() - start:.1f} s)")
    if args.delta is None and not args.attr:
        delta = None  # --sweep alone: contact sheets only
    else:
        log("δ: " + ", ".join(f"{a}={v:+g}" for a, v in zip(model.attributes, delta)))
    if sweep is not None:
        log(f"sweep: {', '.join(model.attributes[c] for c in columns)} over {', '.join(f'{v:g}' for v in sweep)}")
    strongest = np.abs(delta) if delta is not None else np.zeros(len(model.attributes))
    if sweep is not None:
        strongest[columns] = np.maximum(strongest[columns], np.abs(sweep).max())
    over = [f"{a} |δ|={v:g} > {m:g}" for a, v, m in zip(model.attributes, strongest, model.delta_max) if v > m]
    if over:
        log(f"note: the model clips δ to its trained range: {', '.join(over)}")
    if delta is not None and masker is None:
        masker = heads.HeadMasker(default_segmenter(log))
    failures, outputs = 0, {}
    for path in args.photos:
        try:
            s = edit_photo(path, model, detector, args, delta, sweep, columns, log, outputs, masker, inputs)
        except BadInput as e:
            err(e)
            failures += 1
            continue
        except OSError as e:  # the output cannot be written
            err(f"{path}: cannot write the output: {e}")
            failures += 1
            continue
        except ServingError as e:
            err(f"{path}: {e}")
            return EXIT_MODEL
        share = s["changed_outside"] / max(s["pixels"] - s["region"], 1)
        log(f"{path} -> {', '.join(s['written'])}: {len(s['edited'])} of {s['faces']} face(s) "
            + ("edited" if delta is not None else "swept")
            + (f" ({len(s['skipped'])} too small)" if s["skipped"] else "")
            + (f"; blended region {100 * s['region'] / s['pixels']:.1f}% of the photo (head mask: "
               f"{', '.join(dict.fromkeys(s['sources']))}); changed outside it: {s['changed_outside']} px "
               f"({100 * share:.4f}%)" if delta is not None else ""))
        if args.timings:
            ms = s["ms"]
            log("  ms: " + ", ".join(f"{k} {v:.0f}" for k, v in ms.items()) + f" (total {sum(ms.values()):.0f})")
    return EXIT_BAD_INPUT if failures else 0

