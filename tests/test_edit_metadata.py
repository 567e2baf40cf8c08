"""What `python -m maae_tf.edit` keeps of a photo file besides its pixels: the format (the input's,
or the one the output's suffix names), the ICC colour profile, the EXIF (Orientation applied on
reading and reset to 1 on writing) and a JPEG's chroma subsampling; and the demo's download keeps
the same. The model is conftest's tiny export; the face test_edit's placed synthetic one."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, JpegImagePlugin
from test_edit import FixedDetector, make_photo, run_edit

from maae_tf.files import decode_photo, encode_photo, read_photo
from maae_tf.photos import demo_app, heads
from maae_tf.photos.models import LocalModel

ORIENTATION, MAKE, DATETIME = 0x0112, 0x010F, 0x0132
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


def camera_exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE], exif[DATETIME] = orientation, "maae_tf test camera", "2024:05:06 07:08:09"
    return exif.tobytes()


@pytest.fixture(scope="module")
def camera_jpeg(tmp_path_factory):
    """A JPEG as a camera writes it: pixels stored turned (EXIF Orientation 6 shows them upright),
    an sRGB ICC profile, Make and DateTime, 4:4:4 chroma; with the upright photo and its face."""
    root = tmp_path_factory.mktemp("camera")
    photo, face, _ = make_photo()
    stored = np.ascontiguousarray(np.rot90(photo, 1))
    Image.fromarray(stored).save(root / "cam.jpg", quality=92, subsampling=0, icc_profile=SRGB,
                                 exif=camera_exif(6))
    return root / "cam.jpg", photo, face


def assert_metadata_kept(path, fmt: str, photo: np.ndarray) -> None:
    with Image.open(path) as im:
        exif = im.getexif()
        assert im.format == fmt and im.size == (photo.shape[1], photo.shape[0])  # upright
        assert im.info["icc_profile"] == SRGB
        assert exif[ORIENTATION] == 1 and exif[MAKE] == "maae_tf test camera"
        assert exif[DATETIME] == "2024:05:06 07:08:09"


def test_jpeg_keeps_icc_exif_and_subsampling_upright(camera_jpeg, exported, tmp_path, capsys):
    path, photo, face = camera_jpeg
    code, out, err = run_edit([path, f"--model={exported['single']}", "--delta=3", "-o", tmp_path],
                              FixedDetector([face]), capsys)
    assert code == 0, err
    assert_metadata_kept(tmp_path / "cam.jpg", "JPEG", photo)
    with Image.open(tmp_path / "cam.jpg") as im:
        assert JpegImagePlugin.get_sampling(im) == 0  # 4:4:4 kept
    # the output's suffix names another format: that one, with the same profile and EXIF
    code, out, err = run_edit([path, f"--model={exported['single']}", "--delta=3", "-o", tmp_path / "cam.png"],
                              FixedDetector([face]), capsys)
    assert code == 0, err
    assert_metadata_kept(tmp_path / "cam.png", "PNG", photo)


def test_png_round_trip_keeps_format_profile_and_exif(exported, tmp_path, capsys):
    photo, face, _ = make_photo()
    Image.fromarray(photo).save(tmp_path / "face.png", icc_profile=SRGB, exif=camera_exif(1))
    code, out, err = run_edit([tmp_path / "face.png", f"--model={exported['single']}", "--delta=3",
                               "-o", tmp_path / "out"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert_metadata_kept(tmp_path / "out" / "face.png", "PNG", photo)
    edited, info = read_photo(str(tmp_path / "out" / "face.png"))
    assert info.format == "PNG" and edited.shape == photo.shape and not np.array_equal(edited, photo)


def test_demo_download_keeps_what_edit_keeps(camera_jpeg, exported, tmp_path, capsys):
    path, photo, face = camera_jpeg
    code, _, err = run_edit([path, f"--model={exported['single']}", "--delta=2", "-o", tmp_path],
                            FixedDetector([face]), capsys)
    assert code == 0, err
    app = demo_app.DemoApp(LocalModel(str(exported["single"])), FixedDetector([face]), heads.HeadMasker(),
                           log=lambda *a: None)
    sid = app.load(path.read_bytes(), "cam.jpg")["sid"]
    data, name = app.download(sid, 0, "2")
    assert name == "cam.jpg" and data == (tmp_path / "cam.jpg").read_bytes()


def test_a_profile_of_another_colour_space_is_not_kept():
    """A CMYK JPEG is read as RGB: its CMYK profile no longer describes the pixels."""
    cmyk_profile = SRGB[:16] + b"CMYK" + SRGB[20:]  # only the header's colour space is read
    im = Image.new("CMYK", (32, 24), (0, 128, 255, 0))
    buf = io.BytesIO()
    im.save(buf, "JPEG", icc_profile=cmyk_profile)
    pixels, info = decode_photo(buf.getvalue(), "cmyk.jpg")
    assert pixels.shape == (24, 32, 3) and info.icc_profile is None
    # nor is an RGB profile written onto gray pixels
    gray_jpeg = encode_photo(pixels[..., 0], ".jpg", info=read_info_with(SRGB))
    assert "icc_profile" not in Image.open(io.BytesIO(gray_jpeg)).info


def read_info_with(icc: bytes):
    """The PhotoInfo of a small RGB JPEG carrying `icc`."""
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "JPEG", icc_profile=icc)
    return decode_photo(buf.getvalue(), "rgb.jpg")[1]
