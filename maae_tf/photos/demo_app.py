"""The web demo's work, independent of HTTP (`DemoApp`): a photo arrives (its faces found,
aligned and masked once, as `edit` does it), a slider move (the model on the face's crop, the
change pasted back, a PNG to show), the download (the file `edit` writes for the same δ, byte
for byte: the same steps from maae_tf.photos.align, the same encoder); and the built-in examples."""

from __future__ import annotations

import collections
import dataclasses
import os
import secrets
import threading
import time

import numpy as np

from maae_tf.data import faces
from maae_tf.files import PhotoInfo, decode_photo, encode_photo, encode_preview
from maae_tf.photos.align import (BadInput, align_face, all_too_small_message, blend_edit, head_mask,
                                  no_face_message)
from maae_tf.photos.photo_files import output_path

KEEP_PHOTOS = 8              # photos held in memory (the oldest is dropped)
EXAMPLES = ("one synthetic face", "two synthetic faces")


@dataclasses.dataclass
class Photo:
    """One uploaded photo with everything a slider move reuses: its faces aligned and their
    head masks (computed once, when the photo arrives)."""

    sid: str
    name: str
    photo: np.ndarray              # as read (gray, RGB or RGBA), upright
    info: PhotoInfo                # its format, ICC profile and EXIF (what the download keeps)
    faces: list                    # one dict per face found (what the page shows)
    aligned: dict                  # face index → align.AlignedFace (the faces big enough to edit)
    heads: dict                    # face index → heads.HeadMask
    original_png: bytes            # what the page shows as "before"
    scale: float                   # shown size / photo size (1 unless the photo is larger than --preview)


def example_photo(n: int) -> tuple[np.ndarray, str]:
    """Built-in example n (RGB, file name): faces drawn by the synthetic face set, never a real one."""
    import cv2

    from maae_tf.data import synthetic_faces

    if n == 0:
        rgb = synthetic_faces.render(0, 1, synthetic_faces.identity_params(0, 0))[0]
        name = "synthetic-portrait.png"
    elif n == 1:
        a = synthetic_faces.render(0, 7, synthetic_faces.identity_params(0, 3))[0]
        b = synthetic_faces.render(0, 12, synthetic_faces.identity_params(0, 5))[0]
        rgb, name = np.concatenate([a, b], 1), "synthetic-pair.png"
    else:
        raise BadInput(f"no example {n} (there are {len(EXAMPLES)})")
    return cv2.resize(rgb, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC), name


class DemoApp:
    """What the page asks for, independent of HTTP: load a photo, render an edit, the download.
    `model` a models.LocalModel or models.ServedModel, `detector` RGB → [faces.Face] (dlib's in the
    command), `masker` a heads.HeadMasker. Model calls are serialised (one at a time)."""

    def __init__(self, model, detector, masker, min_face: int = 64, quality: int = 95, preview: int = 1600,
                 log=print):
        self.model, self.detector, self.masker = model, detector, masker
        self.min_face, self.quality, self.preview, self.log = min_face, quality, preview, log
        self.photos: collections.OrderedDict[str, Photo] = collections.OrderedDict()
        # one computation at a time (dlib, the segmenter's interpreter and the model are not
        # meant to be called from two threads at once); the photo store has its own lock
        self.work, self.lock = threading.Lock(), threading.Lock()
        self._last = None                     # (key, result): the download after a move reuses it
        self._examples: dict[int, tuple[bytes, str]] = {}

    def info(self) -> dict:
        m = self.model
        return {"attributes": list(m.attributes), "delta_max": [float(v) for v in m.delta_max],
                "image_size": int(m.image_size), "source": m.source, "min_face": self.min_face,
                "examples": [{"id": i, "title": t} for i, t in enumerate(EXAMPLES)]}

    # ----- a photo arrives: detect, align, head masks, once
    def load(self, data: bytes, name: str) -> dict:
        name = os.path.basename(name or "photo") or "photo"
        try:
            photo, info = decode_photo(data, name)
        except ValueError as e:
            raise BadInput(f"{e}. Upload a JPEG, PNG or WebP photo.") from None
        rgb = faces.as_rgb(photo)
        with self.work:
            return self._prepare(name, photo, info, rgb)

    def _prepare(self, name, photo, info, rgb) -> dict:
        found = self.detector(rgb)
        if not found:
            raise BadInput(no_face_message(name, photo)
                                + ". Upload a photo where a face looks at the camera.")
        listed, aligned, heads, small = [], {}, {}, []
        for i, face in enumerate(found):
            a = align_face(rgb, face, self.model.crop, with_crop=False)
            reason = None
            if a.width < self.min_face:
                small.append(a.width)
                reason = (f"{a.width:.0f} px wide, below the {self.min_face} px the demo edits "
                          f"(--min_face)")
            else:
                try:
                    heads[i] = head_mask(self.masker, rgb, face, name, i)
                    aligned[i] = align_face(rgb, face, self.model.crop)
                except BadInput as e:
                    reason = str(e)
            listed.append({"index": i, "box": [float(v) for v in face.box], "width": round(float(a.width), 1),
                           "ok": reason is None, "reason": reason})
        if not aligned:
            if len(small) == len(listed):
                widest = max(small)
                raise BadInput(all_too_small_message(name, len(listed))
                                    + f": the widest is {widest:.0f} px, the demo edits faces from "
                                    f"{self.min_face} px. Upload a photo with a larger face.")
            raise BadInput(f"{name}: no face can be edited: "
                                + "; ".join(f"face {f['index']}: {f['reason']}" for f in listed))
        h, w = photo.shape[:2]
        scale = min(1.0, self.preview / max(h, w))
        photo_entry = Photo(secrets.token_hex(8), name, photo, info, listed, aligned, heads,
                            self._png(photo, scale), scale)
        with self.lock:
            self.photos[photo_entry.sid] = photo_entry
            while len(self.photos) > KEEP_PHOTOS:
                self.photos.popitem(last=False)
        return self.describe(photo_entry)

    def load_example(self, n: int) -> dict:
        if n not in self._examples:
            rgb, name = example_photo(n)
            self._examples[n] = (encode_photo(rgb, ".png"), name)
        data, name = self._examples[n]
        return self.load(data, name)

    @staticmethod
    def describe(p: Photo) -> dict:
        h, w = p.photo.shape[:2]
        return {"sid": p.sid, "name": p.name, "width": w, "height": h, "format": p.info.format, "faces": p.faces,
                "shown": [round(w * p.scale), round(h * p.scale)],
                "download_name": download_name(p.name, p.info.format), "face": min(p.aligned)}

    def _png(self, image: np.ndarray, scale: float) -> bytes:
        if scale < 1.0:
            import cv2

            h, w = image.shape[:2]
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        return encode_preview(image)

    # ----- a slider move
    def photo(self, sid: str) -> Photo:
        with self.lock:
            p = self.photos.get(sid)
        if p is None:
            raise KeyError(f"this photo is no longer held by the demo (it keeps the last {KEEP_PHOTOS}); "
                           f"upload it again")
        return p

    def deltas(self, text: str) -> np.ndarray:
        """δ per attribute from the page's comma-separated numbers (column order: info()["attributes"])."""
        k = len(self.model.attributes)
        try:
            d = np.array([float(v) for v in text.split(",")], np.float32)
        except ValueError:
            raise BadInput(f"δ must be {k} comma-separated numbers, got {text!r}") from None
        if d.shape != (k,) or not np.all(np.isfinite(d)):
            raise BadInput(f"δ must be {k} finite numbers ({', '.join(self.model.attributes)}), got {text!r}")
        return d

    def result(self, sid: str, face: int, delta_text: str) -> tuple[Photo, np.ndarray, dict]:
        """(photo, the edited photo at full resolution, ms per stage): exactly what
        `edit --face=FACE` computes for these δ (the same functions, the same order)."""
        p = self.photo(sid)
        if face not in p.aligned:
            raise BadInput(f"{p.name}: face {face} cannot be edited (faces: "
                                f"{', '.join(str(i) for i in sorted(p.aligned))})")
        delta = self.deltas(delta_text)
        key = (sid, face, delta.tobytes())
        ms = {}
        with self.work:
            if self._last is not None and self._last[0] == key:
                return p, self._last[1], {"edit": 0.0, "blend": 0.0}
            a = p.aligned[face]
            t0 = time.perf_counter()
            new = self.model.edit(a.crop[None], delta[None])[0]
            t1 = time.perf_counter()
            out, _ = blend_edit(p.photo, a, new, p.heads[face])
            t2 = time.perf_counter()
            self._last = (key, out)
        ms["edit"], ms["blend"] = (t1 - t0) * 1000, (t2 - t1) * 1000
        return p, out, ms

    def render(self, sid: str, face: int, delta_text: str) -> tuple[bytes, dict]:
        """The PNG the page shows for these δ and the time of each stage (ms)."""
        p, out, ms = self.result(sid, face, delta_text)
        t = time.perf_counter()
        png = self._png(out, p.scale)
        ms["encode"] = (time.perf_counter() - t) * 1000
        return png, ms

    def download(self, sid: str, face: int, delta_text: str) -> tuple[bytes, str]:
        """(file bytes, file name): what `edit` writes for this photo and δ (format, ICC profile and
        EXIF kept; --quality)."""
        p, out, _ = self.result(sid, face, delta_text)
        name = download_name(p.name, p.info.format)
        try:
            return encode_photo(out, os.path.splitext(name)[1], self.quality, p.info), name
        except ValueError as e:
            raise BadInput(f"{name}: {e}") from None


def download_name(name: str, fmt: str) -> str:
    """The file name `edit` gives the output of photo `name` (same name, the format's suffix)."""
    return os.path.basename(output_path(name, fmt, "edited", 2))
