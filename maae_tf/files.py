"""File input and output shared by the commands: atomic writes (a reader, be it a resumed run, a
server or a second command, never sees half a file: the data goes to a temporary file beside the
target, then `os.replace` moves it into place) and image files with errors that name the file."""

from __future__ import annotations

import os


def write_text_atomic(path: str, text: str) -> None:
    """Writes `text` to `path` atomically (creating the parent folder)."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically (creating the parent folder)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_image(path: str):
    """RGB uint8 [H, W, 3] of an image file; a missing or undecodable file is a ValueError naming it."""
    import cv2

    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{path}: not a readable image (corrupt, or a format OpenCV cannot decode)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: str, image_rgb) -> None:
    """Writes an RGB uint8 image atomically, in the format its suffix names (PNG without one)."""
    import cv2

    suffix = os.path.splitext(path)[1] or ".png"
    ok, data = cv2.imencode(suffix, cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"{path}: cannot encode an image as {suffix}")
    write_bytes_atomic(path, data.tobytes())
