"""maae_tf.evaluation.diagnose: gradient shares of G's terms, D's heads, where the edit acts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_train_config
from maae_tf.evaluation import diagnose, scoring
from maae_tf.training import loop as train

REPO = Path(__file__).resolve().parents[1]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=8), st.lists(st.integers(0, 5), min_size=1, max_size=8))
def test_roc_auc_counts_pairs(pos, neg):
    pairs = [(p > n) + 0.5 * (p == n) for p in pos for n in neg]
    assert diagnose.roc_auc(pos, neg) == np.mean(pairs)


def test_diagnose_a_run(tiny_celeba, tmp_path):
    workdir = tmp_path / "run"
    cfg = tiny_train_config(tiny_celeba)
    cfg.loss.alpha_cls = 1.0
    cfg.loss.alpha_gan_reconstruction = 1.0
    cfg.loss.alpha_keep = 1.0
    cfg.eval.classifier_steps, cfg.eval.classifier_batch = 30, 8  # the judge of tables 4 and 5
    train.train(cfg, str(workdir))
    env = dict(os.environ, MAAE_TF_CACHE=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-m", "maae_tf.diagnose", f"--workdir={workdir}", "--num_images=12"],
                       cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-2000:]
    d = json.loads((workdir / "eval" / "diagnose.json").read_text())
    # every weighted term with a weight, the attribute term included
    assert set(d["gradients"]["norm"]) == {"vae", "gan", "id", "cycle", "mask", "cls", "gan_reconstruction", "keep"}
    assert all(v > 0 for v in d["gradients"]["norm"].values())
    assert -1.0 <= d["gradients"]["adversarial_vs_rest_cosine"] <= 1.0
    assert 0.0 <= d["heads"]["auc_real_classes"]["POSITIVE"] <= 1.0
    loc = d["locality"]
    assert len(loc["per_row_eighth"]) == 8 and 0.0 <= loc["share_on_face"] <= 1.0
    assert "AUC real positives vs real negatives" in r.stdout and "per row eighth" in r.stdout
    judge = d["judge"]
    assert judge["positives"]["images"] + judge["negatives"]["images"] == 12
    for side in judge.values():
        shares = ("judge_on_photos", "kept_by_reconstruction", "kept_with_the_photos_mouth",
                  "photo_with_the_reconstructions_mouth")
        assert all(0.0 <= side[k] <= 1.0 for k in shares)
    assert set(d["background_psnr_by_delta"]) == {"0", "+δ0", "-δ0"}
    assert all(0.0 < psnr <= 100.0 and n == 12 for psnr, n in d["background_psnr_by_delta"].values())
    assert "photos read right" in r.stdout and "the photo with G(x, 0)'s mouth box" in r.stdout
    assert "G(x, +δ0)" in r.stdout


@pytest.mark.parametrize("where", ["mouth", "forehead"])
def test_the_judge_table_says_whether_g_x_0_loses_the_label_in_the_mouth_box(where):
    # photos: positives bright at `where`, negatives dark; G(x, 0) brightens `where` on every face, so a
    # judge that reads `where` loses every negative, and pasting back the photo's mouth box mends that
    # exactly when `where` lies in it
    size, rng = 16, np.random.default_rng(0)
    region = diagnose.mouth_box(size) if where == "mouth" else np.pad(np.ones((2, 8)), ((1, 13), (4, 4)))
    region = region[None, :, :, None].astype(np.float32)
    positive = np.arange(8) % 2 == 0
    images = rng.uniform(-0.2, 0.2, (8, size, size, 3)).astype(np.float32)
    images = images * (1 - region) + np.where(positive, 0.8, -0.8)[:, None, None, None] * region
    reconstruction = images * (1 - region) + 0.8 * region
    judge = lambda x, training=False: np.sum(x[..., :1] * region, axis=(1, 2)) / region.sum()  # logit > 0: positive
    edits = scoring.Edits(images=images, masks=np.zeros((8, size, size, 1), np.float32), positive=positive,
                          reconstruction=reconstruction, plus=images, minus=images)
    table = diagnose.judge_ceiling(edits, judge, column=0)
    assert table["positives"]["images"] == table["negatives"]["images"] == 4
    assert table["negatives"]["judge_on_photos"] == 1.0 and table["negatives"]["kept_by_reconstruction"] == 0.0
    in_box = where == "mouth"
    assert table["negatives"]["kept_with_the_photos_mouth"] == (1.0 if in_box else 0.0)
    assert table["negatives"]["photo_with_the_reconstructions_mouth"] == (0.0 if in_box else 1.0)
    assert all(v == 1.0 for k, v in table["positives"].items() if k != "images")


def test_diagnose_names_a_missing_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "maae_tf.diagnose", f"--workdir={tmp_path / 'none'}"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr
