"""maae_tf.evaluation.diagnose: gradient shares of G's terms, D's heads, where the edit acts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import tiny_train_config
from maae_tf.evaluation import diagnose
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
        assert 0.0 <= side["judge_on_photos"] <= 1.0 and 0.0 <= side["kept_by_reconstruction"] <= 1.0
    assert set(d["background_psnr_by_delta"]) == {"0", "+δ0", "-δ0"}
    assert all(0.0 < psnr <= 100.0 and n == 12 for psnr, n in d["background_psnr_by_delta"].values())
    assert "photos read right" in r.stdout and "G(x, +δ0)" in r.stdout


def test_diagnose_names_a_missing_run(tmp_path):
    r = subprocess.run([sys.executable, "-m", "maae_tf.diagnose", f"--workdir={tmp_path / 'none'}"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 2 and "config.json" in r.stderr and "Traceback" not in r.stderr
