"""The synthetic face set: CelebA layout, determinism, labels that mean what is drawn, masks."""

from __future__ import annotations

import collections
import filecmp
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest

from maae_tf import attributes
from maae_tf.data import synthetic, synthetic_faces

NUM = 40


def _read_table(path, header_lines):
    with open(path, encoding="ascii") as f:
        lines = f.read().splitlines()
    head, rows = lines[:header_lines], [ln.split() for ln in lines[header_lines:]]
    return head, rows


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    out = synthetic.build(str(root / "set"), NUM, seed=3, workers=2)
    head, rows = _read_table(os.path.join(out, synthetic.ATTR_FILE), 2)
    names = head[1].split()
    attrs = np.array([[int(v) for v in row[1:]] for row in rows])
    _, lm_rows = _read_table(os.path.join(out, synthetic.LANDMARK_FILE), 2)
    marks = np.array([[int(v) for v in row[1:]] for row in lm_rows])
    _, id_rows = _read_table(os.path.join(out, synthetic.IDENTITY_FILE), 0)
    ids = np.array([int(row[1]) for row in id_rows])
    images = [cv2.imread(os.path.join(out, synthetic.IMAGE_DIR, f"{i:06d}.jpg"))[..., ::-1]
              for i in range(1, NUM + 1)]
    masks = [cv2.imread(os.path.join(out, synthetic.MASK_DIR, f"{i:06d}.png"),
                        cv2.IMREAD_UNCHANGED) for i in range(1, NUM + 1)]
    return dict(out=out, root=root, head=head, names=names, attrs=attrs, marks=marks, ids=ids,
                images=np.stack(images).astype(np.float32), masks=np.stack(masks))


def _skin(img, m, axis=None):
    """Mean of both cheeks: below each eye, at the height of the nose tip."""
    y = m[5]
    patches = [img[y - 1:y + 4, x - 3:x + 4] for x in (m[0], m[2])]
    return np.concatenate(patches, 1).mean(axis)


def _col(s, name):
    return s["attrs"][:, s["names"].index(name)] == 1


def test_layout(synth):
    out = synth["out"]
    assert synth["head"][0] == str(NUM)
    assert tuple(synth["names"]) == attributes.CELEBA_ATTRIBUTES
    assert synth["attrs"].shape == (NUM, 40) and set(np.unique(synth["attrs"])) <= {-1, 1}
    assert sorted(os.listdir(os.path.join(out, synthetic.IMAGE_DIR))) == [
        f"{i:06d}.jpg" for i in range(1, NUM + 1)]
    assert sorted(os.listdir(os.path.join(out, synthetic.MASK_DIR))) == [
        f"{i:06d}.png" for i in range(1, NUM + 1)]
    with open(os.path.join(out, synthetic.ATTR_FILE), encoding="ascii") as f:
        third = f.read().splitlines()[2]
    assert third.startswith("000001.jpg ") and third[11:13] in ("-1", " 1")
    _, parts = _read_table(os.path.join(out, synthetic.PARTITION_FILE), 0)
    assert [p[0] for p in parts] == [f"{i:06d}.jpg" for i in range(1, NUM + 1)]
    assert {p[1] for p in parts} <= {"0", "1", "2"}
    assert sum(p[1] == "0" for p in parts) >= NUM // 2
    head, lm = _read_table(os.path.join(out, synthetic.LANDMARK_FILE), 2)
    assert head[0] == str(NUM) and tuple(head[1].split()) == synthetic.LANDMARK_NAMES
    assert len(lm) == NUM and all(len(r) == 11 for r in lm)
    assert len(synth["ids"]) == NUM
    assert synth["images"].shape == (NUM, 218, 178, 3)
    assert synth["masks"].shape == (NUM, 218, 178) and synth["masks"].dtype == np.uint8
    assert set(np.unique(synth["masks"])) == {0, 255}
    assert not [p for p in os.listdir(synth["root"]) if ".tmp-" in p]


def test_label_rules(synth):
    hair = np.stack([_col(synth, n) for n in synthetic_faces.HAIR_COLOURS], 1)
    assert (hair.sum(1) == 1).all()
    assert _col(synth, "No_Beard").all() and _col(synth, "Young").all()
    fixed = [n for n in attributes.CELEBA_ATTRIBUTES if n not in synthetic_faces.PROBS
             and n not in synthetic_faces.HAIR_COLOURS and n not in synthetic_faces.ALWAYS_POSITIVE
             and n != "Male"]
    assert not any(_col(synth, n).any() for n in fixed)
    for name in synthetic_faces.PROBS:  # each drawn attribute shows up both ways in 40 images
        assert 0 < _col(synth, name).sum() < NUM, name


def test_determinism(synth, tmp_path):
    same = synthetic.build(str(tmp_path / "same"), NUM, seed=3, workers=1)
    other = synthetic.build(str(tmp_path / "other"), NUM, seed=4, workers=2)
    for rel in [synthetic.ATTR_FILE, synthetic.PARTITION_FILE, synthetic.IDENTITY_FILE,
                synthetic.LANDMARK_FILE]:
        assert filecmp.cmp(os.path.join(synth["out"], rel), os.path.join(same, rel),
                           shallow=False), rel
    for sub in (synthetic.IMAGE_DIR, synthetic.MASK_DIR):
        names = sorted(os.listdir(os.path.join(synth["out"], sub)))
        match, mismatch, errors = filecmp.cmpfiles(os.path.join(synth["out"], sub),
                                                   os.path.join(same, sub), names, shallow=False)
        assert len(match) == NUM and not mismatch and not errors
        _, mismatch, _ = filecmp.cmpfiles(os.path.join(synth["out"], sub),
                                          os.path.join(other, sub), names, shallow=False)
        assert len(mismatch) >= NUM - 2
    assert not filecmp.cmp(os.path.join(synth["out"], synthetic.ATTR_FILE),
                           os.path.join(other, synthetic.ATTR_FILE), shallow=False)


def _mouth_dark_pixels(img, m):
    """Pixels in the box under the mouth corners darker than 60% of the cheeks' luminance."""
    lum = img.mean(2)
    (lx, ly), (rx, ry) = m[6:8], m[8:10]
    y = (ly + ry) // 2
    box = lum[y - 4:y + 16, lx + 3:rx - 2]
    return int((box < min(0.6 * _skin(lum, m), 90)).sum())


def test_mouth_open_is_dark_and_tall(synth):
    dark = np.array([_mouth_dark_pixels(im, m) for im, m in zip(synth["images"], synth["marks"])])
    opened = _col(synth, "Mouth_Slightly_Open")
    assert dark[opened].min() > 1.5 * dark[~opened].max(), (dark[opened], dark[~opened])


def test_smiling_lifts_corners(synth):
    # smile: the mouth corners sit above the centre of the lips; landmarks give the corners
    smiling = _col(synth, "Smiling")
    gap = []
    for im, m in zip(synth["images"], synth["marks"]):
        (lx, ly), (rx, ry) = m[6:8], m[8:10]
        cx = (lx + rx) // 2
        lum = im[:, cx - 1:cx + 2].mean((1, 2))
        col = lum[(ly + ry) // 2 - 1:(ly + ry) // 2 + 14]
        gap.append(int(np.argmin(col)) - 1)  # darkest row below the corner line
    gap = np.array(gap)
    closed = ~_col(synth, "Mouth_Slightly_Open")
    assert gap[smiling & closed].min() > gap[~smiling & closed].max()
    widths = synth["marks"][:, 8] - synth["marks"][:, 6]
    assert widths[smiling].mean() > widths[~smiling].mean()


def test_hair_colours(synth):
    means = []
    for im, mk, m in zip(synth["images"], synth["masks"], synth["marks"]):
        top = min(m[1], m[3]) - 22  # above brows and (possible) bangs' edge
        region = (mk[:top] == 0)
        means.append(im[:top][region].mean(0))
    means = np.array(means)
    lum = means.mean(1)
    yellow = (means[:, 0] + means[:, 1]) / 2 - means[:, 2]
    blond, black = _col(synth, "Blond_Hair"), _col(synth, "Black_Hair")
    gray = _col(synth, "Gray_Hair")
    assert blond.any() and black.any()
    assert lum[blond].min() > lum[black].max() + 40
    if gray.any():
        assert yellow[blond].min() > yellow[gray].max()


def test_eyeglasses_darken_around_eyes(synth):
    glasses = _col(synth, "Eyeglasses")
    vals = []
    for im, m in zip(synth["images"], synth["marks"]):
        (lx, ly), (rx, _) = m[0:2], m[2:4]
        bridge = im[ly - 5:ly + 1, (lx + rx) // 2 - 2:(lx + rx) // 2 + 3].mean()
        skin = _skin(im, m)
        vals.append(skin - bridge)
    vals = np.array(vals)
    assert vals[glasses].min() > vals[~glasses].max()


def test_pale_skin_is_paler_for_the_same_identity(synth):
    pale = _col(synth, "Pale_Skin")
    # pale = lighter and less saturated: the smallest (blue) channel rises most
    skin = np.array([_skin(im, m, (0, 1))[2] for im, m in zip(synth["images"], synth["marks"])])
    pairs = 0
    for k in np.unique(synth["ids"]):
        sel = synth["ids"] == k
        if (sel & pale).any() and (sel & ~pale).any():
            assert skin[sel & pale].min() > skin[sel & ~pale].max() + 15
            pairs += 1
    assert pairs >= 1


def test_bangs_cover_forehead(synth):
    bangs = _col(synth, "Bangs")
    # forehead band just above the brows: hair (when bangs) differs from the skin under the eyes
    diff = []
    for im, m in zip(synth["images"], synth["marks"]):
        ex, ey = (m[0] + m[2]) // 2, min(m[1], m[3])
        band = im[ey - 19:ey - 14, ex - 8:ex + 9].mean((0, 1))
        skin = _skin(im, m, (0, 1))
        diff.append(np.abs(band - skin).max())
    diff = np.array(diff)
    assert np.median(diff[bangs]) > np.median(diff[~bangs]) + 20
    assert np.percentile(diff[~bangs], 80) < 25


def test_masks(synth):
    masks = synth["masks"]
    fg = (masks == 0).mean((1, 2))
    assert fg.min() > 0.12 and fg.max() < 0.45, fg
    assert (masks[:, :8, :8] == 255).all() and (masks[:, -8:, -8:] == 255).all()
    assert (masks[:, :8, -8:] == 255).all() and (masks[:, -8:, :8] == 255).all()
    assert (masks[:, -3:, 89] == 255).all()  # the neck/clothes below the chin are background
    for mk, m in zip(masks, synth["marks"]):
        for x, y in m.reshape(5, 2):
            assert mk[y, x] == 0
        # the whole face centre column between eyes and mouth is foreground
        assert (mk[m[1]:m[7], m[4]] == 0).all()
    # background preservation is a real test: backgrounds are not all alike
    bg_means = np.array([im[mk == 255].mean(0) for im, mk in zip(synth["images"], masks)])
    assert bg_means.std(0).min() > 20


def test_identities(synth):
    ids, attrs = synth["ids"], synth["attrs"]
    counts = collections.Counter(ids.tolist())
    assert len(counts) == NUM // synthetic_faces.IMAGES_PER_IDENTITY
    assert min(counts.values()) >= 2
    for k in counts:
        rows = attrs[ids == k]
        assert (rows != rows[0]).any(), k  # same identity, different attributes
        male = rows[:, attributes.index("Male")]
        assert (male == male[0]).all()  # Male belongs to the identity


def test_cli_and_ensure(tmp_path):
    out = tmp_path / "cli"
    env = dict(os.environ)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-m", "maae_tf.data.synthetic", "--out", str(out),
                           "--num_images", "8", "--workers", "2"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(os.listdir(out / synthetic.IMAGE_DIR)) == 8
    attr = out / synthetic.ATTR_FILE
    before = os.stat(attr).st_mtime_ns
    os.utime(attr, ns=(before - 10**9, before - 10**9))
    stamp = os.stat(attr).st_mtime_ns
    assert synthetic.ensure(str(out), 8) == str(out)
    assert os.stat(attr).st_mtime_ns == stamp  # not rebuilt
    fresh = synthetic.ensure(str(tmp_path / "fresh"), 4, seed=1)
    assert len(os.listdir(os.path.join(fresh, synthetic.IMAGE_DIR))) == 4
    # a folder that is not a synthetic set is never overwritten
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        synthetic.build(str(tmp_path / "user"), 2)
    # rebuilding over an existing synthetic set replaces it atomically
    again = synthetic.build(str(out), 3, workers=1)
    assert len(os.listdir(os.path.join(again, synthetic.IMAGE_DIR))) == 3
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p]
