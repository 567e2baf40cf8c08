"""File input and output shared by the commands: atomic writes (a reader, be it a resumed run, a
server or a second command, never sees half a file: the data goes to a temporary file beside the
target, then `os.replace` moves it into place) and image files with errors that name the file."""

from __future__ import annotations

import os


def write_text_atomic(path: str, text: str, sync: bool = False) -> None:
    """Writes `text` to `path` atomically (creating the parent folder); see `write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"), sync)


def write_bytes_atomic(path: str, data: bytes, sync: bool = False) -> None:
    """Writes `data` to `path` atomically (creating the parent folder). `sync`: the data reaches the
    disk before the file takes its name, so a crash leaves the old file or the whole new one."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
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


# ------------------------------------------------------------------------ photos (maae_tf.photos.edit)
PHOTO_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}


def read_photo(path: str):
    """A photo as the user sees it: (uint8 array, format). EXIF orientation is applied (the array
    is upright, as a viewer shows it); the array is [H, W] for grayscale, [H, W, 3] RGB, or
    [H, W, 4] RGBA when the file has transparency (a palette with a transparent colour, LA and
    RGBA become RGBA; CMYK and YCbCr become RGB). `format` is PIL's name ("JPEG", "PNG", "WEBP",
    ...). A missing, corrupt or truncated file, or a 16-bit/float image, is a ValueError naming it."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    return _open_photo(path, path)


def decode_photo(data: bytes, name: str):
    """`read_photo` of a file's bytes (an upload): the same array and format, the same errors,
    named by `name`."""
    import io

    if not data:
        raise ValueError(f"{name}: not a readable image (the file is empty)")
    return _open_photo(io.BytesIO(data), name)


def _open_photo(source, path: str):
    """read_photo's body: `source` a path or a file object, `path` the name errors give."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(source) as im:
            fmt = im.format or ""
            im.load()
            im = ImageOps.exif_transpose(im)
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable image ({type(e).__name__}: {e})") from None
    mode = im.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        raise ValueError(f"{path}: {mode} images (16-bit or float) are not supported; convert to 8 bits")
    if mode == "1":
        im = im.convert("L")
    elif mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode in ("LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
    elif mode not in ("L", "RGB", "RGBA"):
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8)), fmt


def encode_photo(image, suffix: str, quality: int = 95) -> bytes:
    """Encoded bytes of a uint8 [H, W], [H, W, 3] RGB or [H, W, 4] RGBA array in the format that
    `suffix` names (.jpg/.jpeg, .png, .webp, ...). JPEG uses `quality` (and cannot hold alpha: an
    RGBA array is a ValueError); WebP is written lossless, so the pixels survive exactly."""
    import cv2

    suffix = suffix.lower()
    if image.ndim == 2:
        bgr = image
    elif image.shape[-1] == 3:
        bgr = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.shape[-1] == 4:
        if suffix in (".jpg", ".jpeg"):
            raise ValueError("JPEG cannot store transparency; write .png or .webp")
        bgr = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    else:
        raise ValueError(f"cannot encode an image of shape {image.shape}")
    params = []
    if suffix in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif suffix == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, 101]  # above 100: lossless
    ok, data = cv2.imencode(suffix, bgr, params)
    if not ok:
        raise ValueError(f"cannot encode an image as {suffix}")
    return data.tobytes()


def write_photo(path: str, image, quality: int = 95) -> None:
    """Writes a uint8 gray, RGB or RGBA array atomically in the format its suffix names (see
    `encode_photo`); no EXIF is written, so the file is upright as stored."""
    suffix = os.path.splitext(path)[1] or ".png"
    try:
        data = encode_photo(image, suffix, quality)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    write_bytes_atomic(path, data)
