"""`python -m maae_tf.train_identity`: trains the VGG16-11 identity features as a face recogniser
on a dataset's identities and writes weights that `identity.source=h5` loads (at their width)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from maae_tf.training import identity as train_identity
from maae_tf.data import synthetic
from maae_tf.model.networks import IdentitySpec, build_identity
from maae_tf.model.networks.identity import CONV_LAYERS, h5_width

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    # 96 synthetic faces: identities with several images each (identity_CelebA.txt)
    return synthetic.build(str(tmp_path_factory.mktemp("ids") / "celeba"), 96, seed=5, workers=1)


def test_hold_out_and_labels(faces):
    train, y, held, yh, k = train_identity.identity_files(faces, seed=0)
    assert k >= 2 and len(train) == len(y) and len(held) == len(yh)
    assert set(y) == set(range(k)) and set(yh) <= set(range(k))
    assert not set(train) & set(held)
    assert train_identity.identity_files(faces, seed=0)[2] == held  # reproducible by seed


def test_trains_and_writes_weights_the_identity_network_loads(faces, tmp_path):
    out = tmp_path / "w" / "identity.h5"
    figures = train_identity.train_identity(faces, str(out), size=32, width=0.0625, steps=60, batch=16,
                                            learning_rate=1e-3)
    assert figures["last_loss"] < figures["first_loss"]
    for key in ("held_out_top1", "cosine_to_own_identity", "cosine_to_other_identities", "nearest_centroid_top1"):
        assert np.isfinite(figures[key])
    assert json.loads(Path(f"{out}.json").read_text()) == figures
    with h5py.File(out) as f:
        assert sorted(f) == sorted(CONV_LAYERS)
    assert h5_width(str(out)) == pytest.approx(0.0625)
    net = build_identity(IdentitySpec("h5", str(out)), 32, 1.0)  # narrow weights load at their own width, frozen
    assert net.get_layer("block1_conv1").kernel.shape[-1] == 4 and not net.trainable
    with h5py.File(out) as f:
        np.testing.assert_array_equal(net.get_layer("block4_conv1").get_weights()[0], f["block4_conv1/kernel"][()])
    assert not list(out.parent.glob("*.tmp-*"))  # written atomically


def test_missing_identities_or_weights_are_clear_errors(tmp_path, tiny_celeba):
    with pytest.raises(FileNotFoundError, match="identity weights file not found"):
        build_identity(IdentitySpec("h5", str(tmp_path / "nope.h5")), 128, 1.0)
    r = subprocess.run([sys.executable, "-m", "maae_tf.train_identity", f"--data_dir={tmp_path}",
                        f"--out={tmp_path / 'x.h5'}"], cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 2 and "error:" in r.stderr and not (tmp_path / "x.h5").exists()
