"""File input and output shared by the commands: atomic writes (a reader, be it a resumed run, a
server or a second command, never sees half a file: the data goes to a temporary file beside the
target, then `os.replace` moves it into place) and image files with errors that name the file."""

from __future__ import annotations

import dataclasses
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


# ------------------------------------------------------------------------ photos (maae_tf.photos)
PHOTO_SUFFIXES = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
ORIENTATION = 0x0112        # the EXIF tag that tells a viewer how to turn the stored pixels
METADATA_FORMATS = ("JPEG", "PNG", "WEBP")  # the formats an edit's ICC profile and EXIF are written into


@dataclasses.dataclass(frozen=True)
class PhotoInfo:
    """What a photo file holds besides its pixels, so that an edit is written as the input was.

    `format`: PIL's name ("JPEG", "PNG", "WEBP", ...); `icc_profile`: its colour profile, None
    without one or when it does not describe the pixels as read (a CMYK JPEG's, read as RGB);
    `exif`: its EXIF block with Orientation set to 1 (the pixels are read upright), None without
    one; `subsampling`: a colour JPEG's chroma subsampling (PIL's 0 = 4:4:4, 1 = 4:2:2, 2 = 4:2:0)."""

    format: str
    icc_profile: bytes | None = None
    exif: bytes | None = None
    subsampling: int | None = None


def read_photo(path: str):
    """A photo as the user sees it: (uint8 array, PhotoInfo). EXIF orientation is applied (the
    array is upright, as a viewer shows it); the array is [H, W] for grayscale, [H, W, 3] RGB, or
    [H, W, 4] RGBA when the file has transparency (a palette with a transparent colour, LA and
    RGBA become RGBA; CMYK and YCbCr become RGB). A missing, corrupt or truncated file, or a
    16-bit/float image, is a ValueError naming it."""
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file")
    return _open_photo(path, path)


def decode_photo(data: bytes, name: str):
    """`read_photo` of a file's bytes (an upload): the same array and info, the same errors,
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
            im.load()
            stored = im
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
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8)), photo_info(stored, im.mode)


def photo_info(stored, mode: str) -> PhotoInfo:
    """The PhotoInfo of an opened PIL image `stored` (as in the file) read as an array of PIL
    `mode` ("L", "RGB" or "RGBA")."""
    from PIL import JpegImagePlugin

    icc = stored.info.get("icc_profile") or None
    if icc is not None and not icc_fits(icc, mode):
        icc = None
    try:
        exif = stored.getexif()
    except Exception:  # a damaged EXIF block is left out of the edit, not a reason to refuse the photo
        exif = {}
    if exif:
        exif[ORIENTATION] = 1
    sampling = JpegImagePlugin.get_sampling(stored) if stored.format == "JPEG" else -1
    return PhotoInfo(stored.format or "", icc, exif.tobytes() if exif else None, sampling if sampling >= 0 else None)


def icc_fits(icc: bytes, mode: str) -> bool:
    """Whether an ICC profile describes pixels of PIL `mode`: its header names its colour space at
    bytes 16-20, and a profile of another space (a CMYK one on RGB pixels) would misdescribe them."""
    return icc[16:20] == (b"GRAY" if mode == "L" else b"RGB ")


def encode_photo(image, suffix: str, quality: int = 95, info: PhotoInfo | None = None) -> bytes:
    """Encoded bytes of a uint8 [H, W], [H, W, 3] RGB or [H, W, 4] RGBA array in the format that
    `suffix` names (.jpg/.jpeg, .png, .webp, ...), with `info`'s ICC profile and EXIF (JPEG, PNG
    and WebP) and, JPEG to JPEG, its chroma subsampling. JPEG uses `quality` (and cannot hold
    alpha: an RGBA array is a ValueError); WebP is written lossless, so the pixels survive exactly."""
    import io

    import numpy as np
    from PIL import Image

    fmt = Image.registered_extensions().get(suffix.lower())
    if fmt is None:
        raise ValueError(f"cannot encode an image as {suffix}")
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise ValueError(f"cannot encode an image of shape {image.shape} ({image.dtype})")
    if fmt == "JPEG" and image.ndim == 3 and image.shape[-1] == 4:
        raise ValueError("JPEG cannot store transparency; write .png or .webp")
    im = Image.fromarray(np.ascontiguousarray(image))
    data = io.BytesIO()
    try:
        im.save(data, format=fmt, **save_options(fmt, im.mode, quality, info))
    except (OSError, KeyError, ValueError) as e:
        raise ValueError(f"cannot encode a {im.mode} image as {suffix} ({e})") from None
    return data.getvalue()


def save_options(fmt: str, mode: str, quality: int, info: PhotoInfo | None) -> dict:
    """PIL's save arguments for an image of `mode` written as `fmt` from a photo with `info`."""
    options = {}
    if fmt == "JPEG":
        options["quality"] = int(quality)
        if info is not None and info.format == "JPEG" and info.subsampling is not None and mode == "RGB":
            options["subsampling"] = info.subsampling
    elif fmt == "WEBP":
        options.update(lossless=True, exact=True)  # exact: RGB under transparent pixels kept too
    elif fmt == "PNG":
        options["compress_level"] = 1  # fast; the pixels are the same at any level
    if info is not None and fmt in METADATA_FORMATS:
        if info.icc_profile is not None and icc_fits(info.icc_profile, mode):
            options["icc_profile"] = info.icc_profile
        if info.exif is not None:
            options["exif"] = info.exif
    return options


def write_photo(path: str, image, quality: int = 95, info: PhotoInfo | None = None) -> None:
    """Writes a uint8 gray, RGB or RGBA array atomically in the format its suffix names, with the
    ICC profile and EXIF of `info` (see `encode_photo`); the EXIF's Orientation is 1, so the file
    shows as stored."""
    suffix = os.path.splitext(path)[1] or ".png"
    try:
        data = encode_photo(image, suffix, quality, info)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    write_bytes_atomic(path, data)


def encode_preview(image) -> bytes:
    """PNG bytes of a uint8 gray, RGB or RGBA array for a screen: no metadata, encoded by OpenCV,
    several times faster than `encode_photo` (the web demo sends one per slider move)."""
    import cv2

    codes = {3: cv2.COLOR_RGB2BGR, 4: cv2.COLOR_RGBA2BGRA}
    bgr = image if image.ndim == 2 else cv2.cvtColor(image, codes[image.shape[-1]])
    ok, data = cv2.imencode(".png", bgr)
    if not ok:
        raise ValueError(f"cannot encode an image of shape {image.shape} as PNG")
    return data.tobytes()
