"""`maae_tf.data.faces` (alignment math, warp-back and blend) and the `maae_tf.photos.edit` command.

The math and the command run without a face detector: a synthetic CelebA-layout face (with its
5 drawn landmarks) is placed in a bigger "photo" by a known similarity transform, and a stand-in
detector returns those landmarks. dlib itself is tested on the real sample photos in ../shared,
skipped where they (or dlib) are absent.
"""

from __future__ import annotations

import glob
import os
import re

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from maae_tf import edit as edit_command
from maae_tf.photos import edit

from maae_tf.data import faces
from maae_tf.photos import heads
from maae_tf.data import synthetic_faces
from maae_tf.files import read_photo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared")
CELEBA_SAMPLE = os.path.join(SHARED, "celeba-sample", "img_align_celeba")
HQ_SAMPLE = os.path.join(SHARED, "celebamask-hq-sample")
DEFAULT_CROP = (26 / 218, 3 / 178, 170 / 218, 170 / 178)


def similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.deg2rad(angle_deg)
    return np.array([[scale * np.cos(a), -scale * np.sin(a), tx], [scale * np.sin(a), scale * np.cos(a), ty]])


def synthetic_face(i: int = 1):
    """A 178×218 synthetic aligned face (RGB) and its 5 landmarks [5, 2]."""
    rgb, _, _, landmarks, _ = synthetic_faces.render(0, i, synthetic_faces.identity_params(0, 0))
    return rgb, np.asarray(landmarks, np.float64).reshape(5, 2)


def make_photo(scale=1.6, angle=12.0, offset=(60.0, 40.0), size=(420, 480), seed=0):
    """A photo (RGB [H, W, 3], textured background) holding the synthetic face placed by the
    similarity (angle, scale, offset); returns (photo, face in photo pixels, placement matrix)."""
    face_rgb, landmarks = synthetic_face()
    place = similarity(angle, scale, *offset)
    w, h = size
    rng = np.random.default_rng(seed)
    photo = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_NEAREST)
    face_mask = cv2.warpAffine(np.full(face_rgb.shape[:2], 255, np.uint8), place, (w, h), flags=cv2.INTER_NEAREST)
    placed = cv2.warpAffine(face_rgb, place, (w, h), flags=cv2.INTER_LINEAR)
    photo[face_mask > 0] = placed[face_mask > 0]
    face = faces.Face((0, 0, w, h), faces.apply(place, landmarks), landmarks)
    return photo, face, place


class FixedDetector:
    """Stands in for dlib: returns the same faces for every photo (and counts its calls)."""

    def __init__(self, found):
        self.found, self.calls = list(found), 0

    def __call__(self, rgb):
        self.calls += 1
        return list(self.found)


# ------------------------------------------------------------------------------ the template
def test_templates_agree_with_celebas_own_alignment_targets():
    t = faces.TEMPLATE_CELEBA5
    assert np.abs(t[:2] - faces.CELEBA_ALIGN_TARGETS[:2]).max() < 1.3
    assert np.linalg.norm(t[3:].mean(0) - faces.CELEBA_ALIGN_TARGETS[2]) < 0.7
    assert np.linalg.norm(faces.TEMPLATE_DLIB3[:2] - faces.CELEBA_ALIGN_TARGETS[:2], axis=1).max() < 2.5
    # the training crop holds every template point with room to spare
    top, left, height, width = faces.crop_box(DEFAULT_CROP)
    assert (top, left, height, width) == pytest.approx((26, 3, 170, 170))
    for t in (faces.TEMPLATE_CELEBA5, faces.TEMPLATE_DLIB3):
        assert np.all(t[:, 0] > left + 40) and np.all(t[:, 0] < left + width - 40)
        assert np.all(t[:, 1] > top + 60) and np.all(t[:, 1] < top + height - 20)


def test_crop_of_an_aligned_photo_is_the_training_slice():
    rgb, _ = synthetic_face()
    m = faces.crop_transform(np.eye(3)[:2], DEFAULT_CROP, 170, 170)
    np.testing.assert_array_equal(faces.warp_crop(rgb, m, 170), rgb[26:196, 3:173])


# ------------------------------------------------------------------------- similarity transforms
finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(angle=st.floats(-180, 180, **finite), log_scale=st.floats(-3, 3, **finite),
       tx=st.floats(-1000, 1000, **finite), ty=st.floats(-1000, 1000, **finite),
       k=st.integers(2, 6), seed=st.integers(0, 2 ** 31))
def test_similarity_transform_recovers_any_similarity(angle, log_scale, tx, ty, k, seed):
    truth = similarity(angle, float(np.exp(log_scale)), tx, ty)
    src = np.random.default_rng(seed).uniform(-100, 100, (k, 2))
    src[1] = src[0] + [30.0, 5.0]  # never degenerate
    m = faces.similarity_transform(src, faces.apply(truth, src))
    np.testing.assert_allclose(m, truth, atol=1e-6 * max(1.0, abs(tx), abs(ty)), rtol=1e-6)
    back = faces.apply(faces.invert(m), faces.apply(m, src))
    np.testing.assert_allclose(back, src, atol=1e-6)


def test_similarity_transform_is_least_squares_and_rejects_bad_points():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    dst = faces.apply(similarity(10, 2.0, 5, 7), src) + rng.normal(0, 0.5, (5, 2))
    m = faces.similarity_transform(src, dst)
    best = np.sum((faces.apply(m, src) - dst) ** 2)
    for _ in range(20):  # any nearby similarity fits worse
        jitter = similarity(rng.normal(0, 0.5), np.exp(rng.normal(0, 0.01)), *rng.normal(0, 0.3, 2))
        assert np.sum((faces.apply(faces.compose(jitter, m), src) - dst) ** 2) >= best - 1e-9
    with pytest.raises(ValueError, match="coincide"):
        faces.similarity_transform([[1, 1], [1, 1]], [[0, 0], [1, 1]])
    with pytest.raises(ValueError, match="k >= 2"):
        faces.similarity_transform([[1, 1]], [[0, 0]])


def test_aligning_a_placed_synthetic_face_gives_back_the_aligned_face():
    photo, face, place = make_photo()
    to_aligned = face.to_aligned()
    np.testing.assert_allclose(to_aligned, faces.invert(place), atol=1e-9)
    aligned = cv2.warpAffine(photo, to_aligned, (178, 218), flags=cv2.INTER_LINEAR)
    original, _ = synthetic_face()
    inner = (slice(30, 190), slice(20, 158))
    err = np.abs(aligned[inner].astype(int) - original[inner].astype(int)).mean()
    assert err < 6, err  # only resampling blur (the face was scaled 1.6x and rotated 12°)
    # CelebA's own protocol: a landmark row aligns its eyes and mouth centre onto the targets
    row = faces.celeba_face(face.points.ravel())
    assert row.template is faces.CELEBA_ALIGN_TARGETS and row.landmarks5.shape == (5, 2)
    got = faces.apply(row.to_aligned(), row.landmarks5)
    eyes_mouth = np.array([got[0], got[1], got[3:].mean(0)])
    # the synthetic face's eye spacing differs from CelebA's mean face: a similarity fits it
    # to the 3 targets as well as it can (residual of a least-squares fit, a few pixels)
    assert np.linalg.norm(eyes_mouth - faces.CELEBA_ALIGN_TARGETS, axis=1).max() < 6


# ---------------------------------------------------------------------------- warp back, blend
def test_feather_mask_is_zero_on_the_rim_and_one_inside():
    m = faces.feather_mask(100)
    assert m.dtype == np.float32 and m.shape == (100, 100)
    assert m[:6].max() == 0 and m[:, -6:].max() == 0
    assert m[15:85, 15:85].min() == 1.0
    assert np.all(np.diff(m[50, :50]) >= 0)


@settings(max_examples=40, deadline=None)
@given(channels=st.sampled_from([0, 3, 4]), h=st.integers(8, 90), w=st.integers(8, 90),
       size=st.integers(8, 48), angle=st.floats(-180, 180, **finite), scale=st.floats(0.2, 4.0, **finite),
       cx=st.floats(-40, 130, **finite), cy=st.floats(-40, 130, **finite), seed=st.integers(0, 2 ** 31))
def test_paste_change_never_touches_pixels_outside_the_mask(channels, h, w, size, angle, scale, cx, cy, seed):
    rng = np.random.default_rng(seed)
    shape = (h, w) if channels == 0 else (h, w, channels)
    photo = rng.integers(0, 256, shape, dtype=np.uint8)
    m = similarity(angle, scale, cx, cy)  # photo → crop
    change = rng.uniform(-255, 255, (size, size, 3)).astype(np.float32)
    mask = faces.feather_mask(size)
    out, region = faces.paste_change(photo, change, m, mask)
    assert out.shape == photo.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~region], photo[~region])  # bit-identical outside
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], photo[..., 3])  # alpha kept
    # the region is where the warped mask is positive: inside the crop square's footprint
    ys, xs = np.nonzero(region)
    if len(ys):
        crop_pts = faces.apply(m, np.stack([xs, ys], 1))
        assert np.all(crop_pts > -1.0) and np.all(crop_pts < size)
    # no change, no difference anywhere
    same, _ = faces.paste_change(photo, np.zeros_like(change), m, mask)
    np.testing.assert_array_equal(same, photo)


def test_paste_change_applies_the_change_where_the_mask_is_one():
    photo = np.full((200, 200, 3), 100, np.uint8)
    m = faces.crop_transform(np.eye(3)[:2], DEFAULT_CROP, 170, 170)  # the photo is "aligned"
    change = np.full((170, 170, 3), 20.0, np.float32)
    out, region = faces.paste_change(photo, change, m, faces.feather_mask(170))
    assert np.all(out[80:140, 60:120] == 120)
    assert out[0, 0, 0] == 100 and not region[0, 0] and region[110, 90]


# ----------------------------------------------------------------------------- reading photos
def test_read_photo_applies_exif_orientation_and_keeps_modes(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:10, :20] = 255  # a white block top-left
    im = Image.fromarray(rgb)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view"
    im.save(tmp_path / "rot.jpg", exif=exif.tobytes(), quality=95)
    upright, info = read_photo(str(tmp_path / "rot.jpg"))
    assert info.format == "JPEG" and upright.shape == (60, 40, 3)
    assert upright[:10, -10:].mean() > 200  # the block is now top-right
    # cv2 agrees (it applies EXIF orientation for JPEG by default)
    assert cv2.imread(str(tmp_path / "rot.jpg")).shape == (60, 40, 3)

    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 60), 128, np.uint8)])).save(tmp_path / "rgba.png")
    Image.fromarray(rgb).save(tmp_path / "x.webp", lossless=True)
    assert read_photo(str(tmp_path / "gray.png"))[0].shape == (40, 60)
    rgba, info = read_photo(str(tmp_path / "rgba.png"))
    assert rgba.shape == (40, 60, 4) and info.format == "PNG" and np.all(rgba[..., 3] == 128)
    webp, info = read_photo(str(tmp_path / "x.webp"))
    assert info.format == "WEBP" and np.array_equal(webp, rgb)


def test_read_photo_names_corrupt_and_missing_files(tmp_path):
    (tmp_path / "junk.jpg").write_bytes(b"not an image at all")
    with pytest.raises(ValueError, match="junk.jpg: not a readable image"):
        read_photo(str(tmp_path / "junk.jpg"))
    ok = tmp_path / "ok.jpg"
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(ok)
    (tmp_path / "cut.jpg").write_bytes(ok.read_bytes()[:200])
    with pytest.raises(ValueError, match="cut.jpg: not a readable image"):
        read_photo(str(tmp_path / "cut.jpg"))
    with pytest.raises(ValueError, match="no such file"):
        read_photo(str(tmp_path / "absent.png"))


# ------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """A PNG photo with one placed synthetic face, and a detector returning that face."""
    root = tmp_path_factory.mktemp("photos")
    photo, face, _ = make_photo()
    cv2.imwrite(str(root / "face.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    return root, photo, face


def run_edit(argv, detector, capsys, masker="prior"):
    """The exit code, stdout and stderr of `python -m maae_tf.edit ARGV` run here with `detector`;
    the blend's head mask is the landmark prior (deterministic, no segmentation model needed)
    unless `masker` is given (None: edit's default)."""
    if masker == "prior":
        masker = heads.HeadMasker()
    code = edit.edit_photos(edit_command.parse(["edit", *map(str, argv)]), detector=detector, masker=masker)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_edit_changes_the_face_and_nothing_outside_it(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--delta=4",
                               "-o", tmp_path, "--timings"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert "changed outside it: 0 px (0.0000%)" in out and "ms: read" in out
    result, info = read_photo(str(tmp_path / "face.png"))
    assert info.format == "PNG" and result.shape == photo.shape
    changed = np.any(result != photo, axis=-1)
    assert changed.sum() > 1000  # the untrained net changes the face visibly
    # outside the placed crop square nothing changed: find where the crop can reach
    m = faces.crop_transform(face.to_aligned(), DEFAULT_CROP, 32, 32)
    ys, xs = np.nonzero(changed)
    crop_pts = faces.apply(m, np.stack([xs, ys], 1))
    assert np.all(crop_pts > -1) and np.all(crop_pts < 32)

    # δ = 0 gives the photo back exactly (edit_detail returns the crop, the change is 0)
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--delta=0",
                               "-o", tmp_path / "zero.png"], FixedDetector([face]), capsys)
    assert code == 0, err
    np.testing.assert_array_equal(read_photo(str(tmp_path / "zero.png"))[0], photo)


def test_edit_from_a_workdir_and_with_named_attributes(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    code, out, err = run_edit([root / "face.png", f"--model={exported['runs'][0]}", "--delta=3",
                               "-o", tmp_path / "w.png"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert "model: workdir" in out
    code, out, err = run_edit([root / "face.png", f"--model={exported['pair'].parent}", "--attr", "blond_hair=5",
                               "--attr", "mouth_open=-2", "-o", tmp_path / "p.png"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert "δ: mouth_slightly_open=-2, blond_hair=+5" in out
    assert not np.array_equal(read_photo(str(tmp_path / "p.png"))[0], photo)
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--attr", "smiling=2",
                               "-o", tmp_path / "s.png"], FixedDetector([face]), capsys)
    assert code == 2 and "the model edits mouth_slightly_open, not smiling" in err
    assert not (tmp_path / "s.png").exists()


def test_sweep_writes_a_contact_sheet_per_face(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--sweep=-5:5:5",
                               "-o", tmp_path], FixedDetector([face, face]), capsys)
    assert code == 0, err
    assert sorted(os.listdir(tmp_path)) == ["face_face0_sweep.png", "face_face1_sweep.png"]  # sheets only
    sheet, _ = read_photo(str(tmp_path / "face_face0_sweep.png"))
    assert sheet.shape == (160 + 22, 5 * 160, 3)
    cells = [sheet[:160, i * 160:(i + 1) * 160].astype(int) for i in range(5)]
    assert np.abs(cells[0] - cells[4]).mean() > 1  # -5 and +5 differ
    code, _, err = run_edit([root / "face.png", f"--model={exported['single']}", "--sweep=a:b"], None, capsys)
    assert code == 2 and "--sweep must be LO:HI:N" in err


def test_inputs_gray_rgba_webp_jpeg_keep_their_format(exported, tmp_path, capsys):
    photo, face, _ = make_photo()
    src = tmp_path / "in"
    src.mkdir()
    gray = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray).save(src / "gray.png")
    rgba = np.dstack([photo, np.full(photo.shape[:2], 200, np.uint8)])
    Image.fromarray(rgba).save(src / "rgba.png")
    Image.fromarray(photo).save(src / "pic.webp", lossless=True)
    Image.fromarray(photo).save(src / "pic.jpg", quality=95)
    names = ["gray.png", "rgba.png", "pic.webp", "pic.jpg"]
    code, out, err = run_edit([*(src / n for n in names), f"--model={exported['single']}", "--delta=4",
                               "-o", tmp_path / "out"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert out.count("changed outside it: 0 px") == 4
    g, info = read_photo(str(tmp_path / "out" / "gray.png"))
    assert info.format == "PNG" and g.shape == gray.shape and not np.array_equal(g, gray)
    a, _ = read_photo(str(tmp_path / "out" / "rgba.png"))
    assert a.shape == rgba.shape and np.array_equal(a[..., 3], rgba[..., 3])
    w, info = read_photo(str(tmp_path / "out" / "pic.webp"))
    assert info.format == "WEBP" and w.shape == photo.shape
    assert np.array_equal(w[:20, :20], photo[:20, :20])  # lossless WebP: the corner is exact
    j, info = read_photo(str(tmp_path / "out" / "pic.jpg"))
    assert info.format == "JPEG" and j.shape == photo.shape
    # --format=png: a JPEG's edit in a lossless file, every pixel outside the face exact
    code, out, err = run_edit([src / "pic.jpg", f"--model={exported['single']}", "--delta=4", "--format=png",
                               "-o", tmp_path / "png"], FixedDetector([face]), capsys)
    assert code == 0, err
    p, info = read_photo(str(tmp_path / "png" / "pic.png"))
    jpeg_in = read_photo(str(src / "pic.jpg"))[0]
    assert info.format == "PNG" and np.array_equal(p[:20, :20], jpeg_in[:20, :20])


def test_exif_rotated_photo_is_edited_upright(exported, tmp_path, capsys):
    photo, face, _ = make_photo()
    stored = np.ascontiguousarray(np.rot90(photo, 1))  # what a camera stores; orientation 6 shows it upright
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "cam.jpg", exif=exif.tobytes(), quality=95)
    det = FixedDetector([face])
    code, out, err = run_edit([tmp_path / "cam.jpg", f"--model={exported['single']}", "--delta=3",
                               "-o", tmp_path / "out"], det, capsys)
    assert code == 0, err
    result = np.asarray(Image.open(tmp_path / "out" / "cam.jpg"))
    assert result.shape == photo.shape  # upright, the photo's resolution
    assert Image.open(tmp_path / "out" / "cam.jpg").getexif()[0x0112] == 1  # shown as stored


def test_bad_inputs_are_reported_and_the_rest_processed(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    out_dir = tmp_path / "out"
    code, out, err = run_edit([tmp_path / "broken.jpg", root / "face.png", f"--model={exported['single']}",
                               "--delta=3", "-o", out_dir], FixedDetector([face]), capsys)
    assert code == 2
    assert "broken.jpg: not a readable image" in err
    assert os.listdir(out_dir) == ["face.png"]

    nothing = tmp_path / "nothing"
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--delta=3", "-o", nothing],
                              FixedDetector([]), capsys)
    assert code == 2 and "face.png: no face found (420x480 px); nothing written" in err and "nothing written" in err
    assert not nothing.exists()

    tiny_photo, tiny_face, _ = make_photo(scale=0.3, angle=0, offset=(10, 10), size=(120, 100))
    cv2.imwrite(str(tmp_path / "tiny.png"), tiny_photo)
    code, out, err = run_edit([tmp_path / "tiny.png", f"--model={exported['single']}", "--delta=3",
                               "-o", nothing], FixedDetector([tiny_face]), capsys)
    assert code == 2
    assert "face 0 skipped: 51 px wide, below --min_face=64" in out
    assert "every face found (1) is too small; nothing written" in err
    assert not nothing.exists()

    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--delta=3", "--face=3",
                               "-o", nothing], FixedDetector([face]), capsys)
    assert code == 2 and "--face 3 but 1 face(s) found" in err and not nothing.exists()


def test_missing_dlib_is_named(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_dlib(name, *a, **k):
        if name == "dlib":
            raise ImportError("No module named 'dlib'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_dlib)
    with pytest.raises(RuntimeError, match=r'pip install -e "\.\[faces\]"'):
        faces.DlibDetector()


def test_server_path_matches_the_local_savedmodel(scene, exported, tmp_path, capsys):
    from support.tf_serving_double import ModelServerDouble

    root, photo, face = scene
    local = tmp_path / "local.png"
    code, _, err = run_edit([root / "face.png", f"--model={exported['single'].parent}", "--delta=2.5",
                             "-o", local], FixedDetector([face]), capsys)
    assert code == 0, err
    with ModelServerDouble({"mouth_open": str(exported["single"].parent)}) as server:
        code, out, err = run_edit([root / "face.png", f"--server={server.grpc_address}", "--model=mouth_open",
                                   "--delta=2.5", "-o", tmp_path / "served.png"], FixedDetector([face]), capsys)
        assert code == 0, err
        assert "model 'mouth_open' at" in out
        code, out, err = run_edit([root / "face.png", f"--server={server.grpc_address}", "--model=whatever",
                                   "--model_name=nope", "--delta=1", "-o", tmp_path / "x.png"],
                                  FixedDetector([face]), capsys)
        assert code == 1 and "NOT_FOUND" in err
    np.testing.assert_array_equal(read_photo(str(tmp_path / "served.png"))[0], read_photo(str(local))[0])


# --------------------------------------------------------------------------- dlib on real photos
def _dlib_or_skip():
    pytest.importorskip("dlib")
    import importlib.util

    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face-recognition-models is not installed")
    return faces.DlibDetector()


@pytest.fixture(scope="module")
def detector():
    return _dlib_or_skip()


def test_dlib_points_on_celeba_aligned_photos_land_on_the_template(detector):
    paths = sorted(glob.glob(os.path.join(CELEBA_SAMPLE, "*.jpg")))[:12]
    if not paths:
        pytest.skip("../shared/celeba-sample is absent")
    points, crops = [], []
    for p in paths:
        found = detector(read_photo(p)[0])
        if found:
            points.append(np.linalg.norm(found[0].landmarks5 - faces.TEMPLATE_CELEBA5, axis=1))
            corners = faces.CROP_CORNERS
            crops.append(np.linalg.norm(faces.apply(found[0].to_aligned(), corners) - corners, axis=1).mean())
    assert len(points) >= 10
    points = np.array(points)
    # the photos are aligned already: the points sit on the template, the crop is CelebA's own
    assert points[:, [0, 1, 3, 4]].mean() < 4 and points[:, 2].mean() < 9, points.mean(0)
    assert np.mean(crops) < 4, crops


def test_dlib_finds_the_hq_faces_and_aligns_them(detector):
    paths = sorted(glob.glob(os.path.join(HQ_SAMPLE, "*.jpg")))
    if not paths:
        pytest.skip("../shared/celebamask-hq-sample is absent")
    for p in paths:
        photo, _ = read_photo(p)
        found = detector(photo)
        assert len(found) == 1, p
        a = found[0].to_aligned()
        assert 0.1 < faces.scale_of(a) < 0.4  # a 1024² CelebA-HQ face is ~3-6x the aligned size
        assert faces.face_width(a, DEFAULT_CROP) > 400
    assert detector(np.full((300, 300, 3), 128, np.uint8)) == []
    # a huge photo (> 4000 px) is detected on a 1024 px copy; landmarks on the full photo
    huge = cv2.resize(photo, (4200, 4200), interpolation=cv2.INTER_LINEAR)
    found = detector(huge)
    assert len(found) == 1
    np.testing.assert_allclose(found[0].landmarks5 / (4200 / photo.shape[0]),
                               detector(photo)[0].landmarks5, atol=6)


def test_face_choice_duplicate_names_and_bad_model_paths(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    other_face = make_photo(angle=-8, offset=(200, 30), seed=1)[1]
    code, out, err = run_edit([root / "face.png", f"--model={exported['single']}", "--delta=3", "--face=1",
                               "-o", tmp_path / "one.png"], FixedDetector([face, other_face]), capsys)
    assert code == 0 and "1 of 2 face(s) edited" in out, err
    (tmp_path / "b").mkdir()
    cv2.imwrite(str(tmp_path / "b" / "face.png"), photo)
    code, out, err = run_edit([root / "face.png", tmp_path / "b" / "face.png", f"--model={exported['single']}",
                               "--delta=3", "-o", tmp_path / "dup"], FixedDetector([face]), capsys)
    assert code == 2 and "would overwrite the edit of" in err
    assert os.listdir(tmp_path / "dup") == ["face.png"]
    code, _, err = run_edit([root / "face.png", f"--model={tmp_path / 'nope'}", "--delta=1"],
                            FixedDetector([face]), capsys)
    assert code == 2 and "nope: no such model folder" in err
    code, _, err = run_edit([root / "face.png", f"--model={tmp_path}", "--delta=1"], FixedDetector([face]), capsys)
    assert code == 2 and "not a workdir (no config.json)" in err


# ------------------------------------------------------------------ the user's photo is never replaced
def sha256(path) -> str:
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.faults
@pytest.mark.parametrize("how", ["file", "folder", "relative folder", "symlink"])
def test_output_onto_an_input_photo_is_refused_before_anything_is_written(how, scene, exported, tmp_path,
                                                                            capsys, monkeypatch):
    root, photo, face = scene
    mine, other = tmp_path / "mine", tmp_path / "other"
    mine.mkdir()
    other.mkdir()
    (mine / "face.png").write_bytes((root / "face.png").read_bytes())
    (other / "second.png").write_bytes((root / "face.png").read_bytes())  # its output would be fine alone
    (mine / "link.png").symlink_to("face.png")
    before = sha256(mine / "face.png")
    target = {"file": mine / "face.png", "folder": mine, "symlink": mine / "link.png",
              "relative folder": "../mine"}[how]
    monkeypatch.chdir(other)
    # -o FILE names the output of one photo; with a folder a second photo is checked first, and kept
    photos = [other / "second.png", mine / "face.png"] if "folder" in how else [mine / "face.png"]
    det = FixedDetector([face])
    code, out, err = run_edit([*photos, f"--model={exported['single']}", "--delta=3", "-o", target], det, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "would overwrite the input photo" in lines[0] and str(mine / "face.png") in lines[0]
    assert "--overwrite" in lines[0]
    assert sha256(mine / "face.png") == before
    assert sorted(os.listdir(mine)) == ["face.png", "link.png"] and os.path.islink(mine / "link.png")
    assert sorted(os.listdir(other)) == ["second.png"]  # nothing written for the other photo either
    assert det.calls == 0  # refused before the model and the detector ran


@pytest.mark.faults
def test_overwrite_flag_replaces_the_photo_atomically(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    (tmp_path / "face.png").write_bytes((root / "face.png").read_bytes())
    before = sha256(tmp_path / "face.png")
    code, out, err = run_edit([tmp_path / "face.png", f"--model={exported['single']}", "--delta=3",
                               "-o", tmp_path, "--overwrite"], FixedDetector([face]), capsys)
    assert code == 0, err
    assert sha256(tmp_path / "face.png") != before
    assert os.listdir(tmp_path) == ["face.png"]  # no temporary file left beside it
    edited, _ = read_photo(str(tmp_path / "face.png"))
    assert edited.shape == photo.shape and not np.array_equal(edited, photo)


# ----------------------------------------------------------------------- blended under the head only
GREEN = np.array([0, 255, 0], np.uint8)


class GreenScreen:
    """Stands in for the selfie segmenter's runner: "person" is every pixel that is not pure green."""

    def __init__(self, empty: bool = False):
        self.empty = empty

    def probability(self, image):
        person = np.any(image[:, :, :3] != GREEN, axis=-1).astype(np.float32)
        return np.zeros_like(person) if self.empty else person


def green_screen_scene(tmp_path):
    """A PNG of the synthetic face and hair (its own mask) placed on a pure green backdrop, the
    Face, and the boolean person (not green) the GreenScreen sees."""
    rgb, fg_mask, _, landmarks, _ = synthetic_faces.render(0, 1, synthetic_faces.identity_params(0, 0))
    place = similarity(8.0, 1.6, 60.0, 40.0)
    w, h = 420, 480
    photo = np.tile(GREEN, (h, w, 1))
    person = cv2.warpAffine((fg_mask == 0).astype(np.uint8), place, (w, h), flags=cv2.INTER_NEAREST) > 0
    photo[person] = cv2.warpAffine(rgb, place, (w, h), flags=cv2.INTER_LINEAR)[person]
    cv2.imwrite(str(tmp_path / "green.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    points = np.asarray(landmarks, np.float64).reshape(5, 2)
    face = faces.Face((0, 0, w, h), faces.apply(place, points), points)
    return photo, face, np.any(photo != GREEN, axis=-1)


def test_edit_blends_under_the_head_mask_and_keeps_the_background(exported, tmp_path, capsys):
    from maae_tf.data.masks.segmenter import SegmenterSource, face_frame

    photo, face, person = green_screen_scene(tmp_path)
    masker = heads.HeadMasker(SegmenterSource("landmarks", segmenter=GreenScreen()))
    code, out, err = run_edit([tmp_path / "green.png", f"--model={exported['single']}", "--delta=4",
                               "-o", tmp_path / "out"], FixedDetector([face]), capsys, masker=masker)
    assert code == 0, err
    share = float(re.search(r"blended region ([\d.]+)% of the photo \(head mask: segmenter\)", out).group(1))
    assert "changed outside it: 0 px" in out
    result, _ = read_photo(str(tmp_path / "out" / "green.png"))
    changed = np.any(result != photo, axis=-1)
    assert changed.sum() > 1000
    # every changed pixel lies within the head's grown + feathered reach, the rest is bit-identical
    scale = face_frame(heads.face_landmarks5(face))[3]
    distance = cv2.distanceTransform((~person).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    reach = distance < (heads.HEAD_GROW + heads.HEAD_FEATHER) * scale
    assert not changed[~reach].any()
    np.testing.assert_array_equal(result[~reach], photo[~reach])
    # the backdrop inside the crop square, which the crop-wide blend changed, is untouched now
    m = faces.crop_transform(face.to_aligned(), DEFAULT_CROP, 32, 32)
    crop_weight = cv2.warpAffine(faces.feather_mask(32), m, (photo.shape[1], photo.shape[0]),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    backdrop_in_crop = (crop_weight > 0.5) & ~reach
    assert backdrop_in_crop.sum() > 3000 and not changed[backdrop_in_crop].any()
    assert changed.mean() * 100 <= share + 0.05 and share < (crop_weight > 0).mean() * 100


def test_edit_falls_back_to_the_landmark_prior(exported, tmp_path, capsys, monkeypatch):
    from maae_tf.data.masks.segmenter import SegmenterSource

    photo, face, _ = green_screen_scene(tmp_path)
    argv = [tmp_path / "green.png", f"--model={exported['single']}", "--delta=4", "-o", tmp_path / "out"]
    # the segmenter finds no person: the landmark prior, named on the summary line
    masker = heads.HeadMasker(SegmenterSource("landmarks", segmenter=GreenScreen(empty=True)))
    code, out, err = run_edit(argv, FixedDetector([face]), capsys, masker=masker)
    assert code == 0, err
    assert "(head mask: landmarks)" in out and "changed outside it: 0 px" in out
    prior = heads.HeadMasker()(photo, face)
    assert prior.source == "landmarks"
    weights = prior.within((0, 0, photo.shape[1], photo.shape[0]))
    changed = np.any(read_photo(str(tmp_path / "out" / "green.png"))[0] != photo, axis=-1)
    assert changed.any() and not changed[weights == 0].any()
    # the model is not cached: one note, the prior, no download
    monkeypatch.setenv("MAAE_TF_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr("maae_tf.data.masks.segmenter.fetch_segmenter_model",
                        lambda *a, **k: pytest.fail("edit must not download the segmenter"))
    code, out, err = run_edit(argv, FixedDetector([face]), capsys, masker=None)
    assert code == 0, err
    notes = [line for line in out.splitlines() if "not cached" in line]
    assert len(notes) == 1 and notes[0].startswith("note:") and "landmark prior" in notes[0]
    assert "(head mask: landmarks)" in out
    again = np.any(read_photo(str(tmp_path / "out" / "green.png"))[0] != photo, axis=-1)
    np.testing.assert_array_equal(again, changed)  # the same prior, the same edit


def test_head_mask_weights_grow_feather_and_window():
    fg = np.zeros((60, 80), bool)
    fg[20:40, 30:50] = True
    w = heads.grow_and_feather(fg, 3.0, 5.0)
    assert w.dtype == np.float32 and np.all(w[fg] == 1.0)
    assert w[30, 50 + 2] == 1.0 and 0 < w[30, 50 + 5] < 1 and w[30, 50 + 9] == 0.0
    mask = heads.HeadMask((10, 5, 90, 65), w, "segmenter")
    inner = mask.within((0, 0, 100, 100))
    assert inner.shape == (100, 100) and inner[:5].max() == 0 and inner[:, :10].max() == 0
    np.testing.assert_array_equal(inner[5:65, 10:90], w)


@pytest.mark.faults
def test_sweep_sheets_never_replace_an_input_photo(scene, exported, tmp_path, capsys):
    root, photo, face = scene
    for name in ("face.png", "face_face0_sweep.png"):  # the second is named as the first's sheet
        (tmp_path / name).write_bytes((root / "face.png").read_bytes())
    before = sha256(tmp_path / "face_face0_sweep.png")
    code, out, err = run_edit([tmp_path / "face.png", tmp_path / "face_face0_sweep.png",
                               f"--model={exported['single']}", "--sweep=-2:2:3", "-o", tmp_path],
                              FixedDetector([face]), capsys)
    assert code == 2  # --sweep alone writes no edited photo: the folder itself is allowed
    assert f"{tmp_path / 'face_face0_sweep.png'}: the output would overwrite the input photo" in err
    assert sha256(tmp_path / "face_face0_sweep.png") == before
    assert sorted(os.listdir(tmp_path)) == ["face.png", "face_face0_sweep.png", "face_face0_sweep_face0_sweep.png"]
