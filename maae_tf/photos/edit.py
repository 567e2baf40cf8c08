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
format, ICC colour profile and EXIF, upright (the EXIF orientation is applied on reading, and the
written EXIF says Orientation 1); a JPEG keeps its chroma subsampling. An output that would replace an input photo is
refused before anything is written, unless --overwrite. See docs/edit.md.

The steps per face are maae_tf.photos.align's (shared with the demo), the files
maae_tf.photos.photo_files's, the model maae_tf.photos.models's (--model: what it takes), the
flags and strengths maae_tf.photos.edit_options's.

Exit codes: 0 every photo written; 2 a photo was unreadable, had no face, or only faces too small
(nothing is written for it; the others are still processed), an output would replace an input
photo (nothing is written at all) or the arguments are wrong; 1 the model or the server failed.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

from maae_tf.data import faces
from maae_tf.files import write_photo
from maae_tf.photos import heads, models, photo_files
from maae_tf.photos.align import (BadInput, align_face, all_too_small_message, blend_edit, head_mask,
                                  no_face_message, too_small_message)
from maae_tf.photos.edit_options import Options, check_options, clipping_note, parse_sweep, resolve_deltas
from maae_tf.serving.client import ServingError


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
    given); `inputs`: the run's photo_files.InputFiles, which no file written here may replace
    unless --overwrite. Raises BadInput for an unreadable photo, no face, only faces that are too small,
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

    photo, info = photo_files.read_input(path)
    rgb = faces.as_rgb(photo)
    out = photo_files.output_path(path, info.format, args.out, len(args.photos), args.format)
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
    # the edit keeps the photo's ICC profile and EXIF; a contact sheet is a new picture
    files = ([(out, result, args.quality, info)] if delta is not None else []) + [
        (os.path.splitext(out)[0] + f"_face{i}_sweep.png", sheet, 95, None) for i, sheet in sheets]
    # sheet names are known only now: every file is checked before the first is written
    for target, *_ in files:
        hit = None if inputs is None or args.overwrite else inputs.replaced_by(target)
        if hit is not None:
            raise BadInput(photo_files.clobber_message(target, hit))
    for target, image, quality, file_info in files:
        write_photo(target, image, quality, file_info)
    lap("write")
    return {"faces": len(found), "edited": edited, "skipped": skipped, "written": [f[0] for f in files],
            "region": int(region.sum()), "pixels": int(region.size), "changed_outside": changed_outside,
            "sources": sources, "ms": t, "format": info.format}


def summary(path: str, s: dict, blended: bool) -> str:
    """The line `edit` prints for a photo from edit_photo's summary `s` (`blended`: δ was given,
    not --sweep alone)."""
    share = s["changed_outside"] / max(s["pixels"] - s["region"], 1)
    return (f"{path} -> {', '.join(s['written'])}: {len(s['edited'])} of {s['faces']} face(s) "
            + ("edited" if blended else "swept")
            + (f" ({len(s['skipped'])} too small)" if s["skipped"] else "")
            + (f"; blended region {100 * s['region'] / s['pixels']:.1f}% of the photo (head mask: "
               f"{', '.join(dict.fromkeys(s['sources']))}); changed outside it: {s['changed_outside']} px "
               f"({100 * share:.4f}%)" if blended else ""))


def edit_photos(args: Options, detector=None, log=print, masker=None) -> int:
    """`python -m maae_tf.edit`: edits the photos of `args`, returns the exit code (module
    docstring). `detector` (a callable RGB → [faces.Face]) replaces dlib in tests, `masker` (a
    heads.HeadMasker) the default one (the cached segmenter, else the landmark prior)."""
    err = lambda msg: print(f"error: {msg}", file=sys.stderr)  # noqa: E731
    try:  # the flags first: a bad strength is refused before the model loads
        check_options(args)
    except ValueError as e:
        return models.failure(e)
    # every output is checked against every input before the model loads and anything is written
    inputs = photo_files.InputFiles(args.photos)
    clobbered = photo_files.clobbered_inputs(args, inputs)
    for message in clobbered:
        err(message)
    if clobbered:
        return models.EXIT_BAD_INPUT
    try:
        sweep = parse_sweep(args.sweep) if args.sweep else None
        if detector is None:
            detector = faces.DlibDetector(args.landmarks)
        # an --attr the model does not edit is refused before the model's first call
        model = models.open_model(args, log, check=lambda m: resolve_deltas(m.attributes, args.delta, args.attr))
    except (ValueError, RuntimeError, models.ModelError) as e:
        return models.failure(e)
    delta, columns = resolve_deltas(model.attributes, args.delta, args.attr)
    if args.delta is None and not args.attr:
        delta = None  # --sweep alone: contact sheets only
    else:
        log("δ: " + ", ".join(f"{a}={v:+g}" for a, v in zip(model.attributes, delta)))
    if sweep is not None:
        log(f"sweep: {', '.join(model.attributes[c] for c in columns)} over {', '.join(f'{v:g}' for v in sweep)}")
    note = clipping_note(model, delta, sweep, columns)
    if note:
        log(note)
    if delta is not None and masker is None:
        masker = heads.default_masker(log)
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
            return models.EXIT_MODEL
        log(summary(path, s, delta is not None))
        if args.timings:
            ms = s["ms"]
            log("  ms: " + ", ".join(f"{k} {v:.0f}" for k, v in ms.items()) + f" (total {sum(ms.values()):.0f})")
    return models.EXIT_BAD_INPUT if failures else 0
