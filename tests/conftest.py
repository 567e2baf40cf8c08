"""Shared test fixtures.

`tiny_celeba` (session scoped): a tiny dataset in the CelebA release layout, written with cv2 by
`write_tiny_celeba`, that every reader, training and evaluation test can share:

- 40 aligned 178x218 JPEGs `img_align_celeba/000001.jpg ...`: a grey background with a little
  per-image texture and a face-like ellipse in the middle. The ellipse of an image that is positive
  for `TINY_ATTR` (mouth_open, every other image) is RED, of a negative one BLUE, so the attribute
  is an obvious colour a classifier learns in a few steps.
- `background_masks/<stem>.png`: 255 = background (outside the ellipse), 0 = face.
- `list_attr_celeba.txt` with the 40 names of `attributes.CELEBA_ATTRIBUTES` (other columns are
  seeded ±1 noise), `list_eval_partition.txt` (images 0-23 train, 24-27 val, 28-39 test; every
  split has both classes), `identity_CelebA.txt`.

The fixture's value is the dataset root (a pathlib.Path). Do not write into it (it is shared);
call `write_tiny_celeba(tmp_path / "x", ...)` for a private or different copy.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from maae_tf import attributes

TINY_ATTR = "mouth_open"
TINY_N = 40
TINY_SPLITS = (24, 4, 12)  # train, val, test counts, in file order
H, W = 218, 178
# ellipse of the "face", in pixels of the 178x218 image (inside the default 170x170 crop at (26, 3))
CENTER = (W // 2, 26 + 85)
AXES = (45, 60)
POSITIVE_BGR = (40, 40, 220)   # red
NEGATIVE_BGR = (220, 60, 40)   # blue


def tiny_name(i: int) -> str:
    return f"{i + 1:06d}.jpg"


def tiny_positive(i: int) -> bool:
    return i % 2 == 0


def write_tiny_celeba(root, n: int = TINY_N, splits=TINY_SPLITS, attr: str = TINY_ATTR,
                      masks: bool = True, seed: int = 0) -> Path:
    """Writes the tiny CelebA-layout set described in this module's docstring under `root`."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    names = attributes.CELEBA_ATTRIBUTES
    column = attributes.index(attr)
    (root / "img_align_celeba").mkdir(parents=True)
    if masks:
        (root / "background_masks").mkdir()
    rows, parts = [], []
    for i in range(n):
        grey = int(rng.integers(90, 160))
        image = np.full((H, W, 3), grey, np.uint8)
        noise = rng.integers(-12, 13, size=(H // 8 + 1, W // 8 + 1, 1))
        noise = np.repeat(np.repeat(noise, 8, 0), 8, 1)[:H, :W]
        image = np.clip(image.astype(np.int32) + noise, 0, 255).astype(np.uint8)
        colour = POSITIVE_BGR if tiny_positive(i) else NEGATIVE_BGR
        cv2.ellipse(image, CENTER, AXES, 0, 0, 360, colour, thickness=-1)
        cv2.imwrite(str(root / "img_align_celeba" / tiny_name(i)), image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        if masks:
            mask = np.full((H, W), 255, np.uint8)
            cv2.ellipse(mask, CENTER, AXES, 0, 0, 360, 0, thickness=-1)
            cv2.imwrite(str(root / "background_masks" / tiny_name(i).replace(".jpg", ".png")), mask)
        labels = [int(v) for v in rng.choice([-1, 1], size=len(names))]
        labels[column] = 1 if tiny_positive(i) else -1
        rows.append(tiny_name(i) + " " + " ".join(f"{v:2d}" for v in labels))
        n_train, n_val = splits[0], splits[1]
        parts.append(0 if i < n_train else 1 if i < n_train + n_val else 2)
    (root / "list_attr_celeba.txt").write_text(
        f"{n}\n" + " ".join(names) + "\n" + "\n".join(rows) + "\n")
    (root / "list_eval_partition.txt").write_text(
        "".join(f"{tiny_name(i)} {p}\n" for i, p in enumerate(parts)))
    (root / "identity_CelebA.txt").write_text("".join(f"{tiny_name(i)} {1 + i // 2}\n" for i in range(n)))
    return root


@pytest.fixture(scope="session")
def tiny_celeba(tmp_path_factory) -> Path:
    """Root of the shared tiny CelebA-layout set (see the module docstring); read-only by convention."""
    return write_tiny_celeba(tmp_path_factory.mktemp("tiny_celeba") / "celeba")


# ------------------------------------------------------------------------------------------ configs
def tiny_config(data_dir=None, **overrides):
    """The smallest run config, shared by every test: 32 px, channel widths x 1/16, 2 pairs a batch,
    a frozen random F_ID, TINY_ATTR, on `data_dir` when given. `overrides` name keys as
    `python -m maae_tf.train --config.KEY` does, nested ones dotted: tiny_config(**{"loss.alpha_id": 0.0})."""
    from maae_tf.config import base_config

    c = base_config()
    c.attr = TINY_ATTR
    c.image_size, c.width, c.batch_size, c.shuffle_buffer = 32, 0.0625, 2, 64
    c.identity.source = "random"
    if data_dir is not None:
        c.data_dir = str(data_dir)
    c.update_from_flattened_dict(overrides)
    return c


def tiny_spec(**overrides):
    """The ModelSpec of `tiny_config(**overrides)`: what MAAE and build_model take."""
    from maae_tf.model.spec import ModelSpec

    return ModelSpec.from_config(tiny_config(**overrides))


def tiny_train_config(data_dir, image_size: int = 64, **overrides):
    """tiny_config for a whole M-AAE run on a tiny set: 2 steps, a checkpoint at the end, every step logged."""
    return tiny_config(data_dir, image_size=image_size, train_steps=2, checkpoint_every=2, log_every=1,
                       image_every=0, **overrides)


# ------------------------------------------------------------------------------- trained-run stand-ins
def write_run(workdir, attr: str, seed: int = 0, image_size: int = 32, step: int = 3, **overrides):
    """A workdir as `maae_tf.training.loop` leaves it (config.json + checkpoints/ckpt-<step>) holding a tiny
    untrained MAAE (Glorot init, so edits visibly change the output). Returns (workdir, model)."""
    import keras
    import tensorflow as tf

    from maae_tf.config import save_workdir_config
    from maae_tf.model.maae import build_model, checkpoint
    from maae_tf.model.spec import ModelSpec

    c = tiny_config(attr=attr, seed=seed, image_size=image_size, init="glorot", **overrides)
    save_workdir_config(c, str(workdir))
    keras.utils.set_random_seed(seed)
    model = build_model(ModelSpec.from_config(c), identity=False)
    model.g_optimizer.iterations.assign(step)
    manager = tf.train.CheckpointManager(checkpoint(model), str(Path(workdir) / "checkpoints"), max_to_keep=2)
    manager.save(checkpoint_number=step)
    return Path(workdir), model


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Two tiny runs (mouth_open, blond_hair) and their exports: `single` (mouth_open alone) and
    `pair` (mouth_open then blond_hair). Values: paths and the in-memory models."""
    from maae_tf.serving import export

    root = tmp_path_factory.mktemp("exported")
    run_a, model_a = write_run(root / "run_mouth", "mouth_open", seed=1)
    run_b, model_b = write_run(root / "run_blond", "blond_hair", seed=2, step=5)
    single = export.export([str(run_a)], str(root / "models" / "mouth_open"))
    pair = export.export([str(run_a), str(run_b)], str(root / "models" / "pair"))
    return {"root": root, "runs": (run_a, run_b), "models": (model_a, model_b),
            "single": Path(single), "pair": Path(pair)}
