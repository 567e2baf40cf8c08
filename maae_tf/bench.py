"""Training-step benchmark: ms per step and pairs/s of `MAAE.train_step` for a config.

    python -m maae_tf.bench --config=configs/celeba.py --size=64 --batch=8
    python -m maae_tf.bench --config=configs/celeba.py --size=128 --batch=4 --width=0.25 --json

Runs the real train_step (compiled by keras as fit compiles it) on random tensors, so it measures
the model and not the input pipeline. The identity network uses random weights here (same FLOPs
as pretrained ones). Prints one line per run; --json prints one JSON object.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags, logging
from ml_collections import config_flags

from maae_tf import config as config_lib
from maae_tf import precision
from maae_tf.maae import build_model

flags.DEFINE_integer("size", None, "Image size S (default: the config's).")
flags.DEFINE_integer("batch", None, "Pairs per step (default: the config's).")
flags.DEFINE_float("width", None, "Channel width factor (default: the config's).")
flags.DEFINE_integer("steps", 5, "Timed steps (after 2 warm-up steps).")
flags.DEFINE_bool("json", False, "Print one JSON object instead of a line.")
config_flags.DEFINE_config_file("config", config_lib.DEFAULT_CONFIG, "Config file.",
                                lock_config=False)
FLAGS = flags.FLAGS


def random_pairs(batch: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = lambda: tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))
    m = lambda: tf.constant((rng.uniform(size=(batch, size, size, 1)) > 0.5).astype(np.float32))
    return {"x1": x(), "x2": x(), "m1": m(), "m2": m()}


def benchmark(cfg, steps: int) -> dict:
    """Times `steps` training steps of the config's model; returns the figures."""
    cfg = cfg.copy_and_resolve_references()
    cfg.identity.source = "random"
    precision.apply(cfg.precision)
    model = build_model(cfg)
    train_step = tf.function(model.train_step, jit_compile=False)
    data = random_pairs(cfg.batch_size, cfg.image_size)
    for _ in range(2):  # trace + warm-up
        float(train_step(data)["g_loss"])
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        float(train_step(data)["g_loss"])
        times.append(time.perf_counter() - t)
    ms = 1000 * float(np.median(times))
    return {"size": cfg.image_size, "batch": cfg.batch_size, "width": cfg.width,
            "cycle_strength": cfg.cycle_strength, "precision": cfg.precision, "steps": steps,
            "ms_per_step": round(ms, 1), "pairs_per_s": round(cfg.batch_size * 1000 / ms, 2),
            "device": "GPU" if tf.config.list_physical_devices("GPU") else f"CPU x{os.cpu_count()}"}


def main(argv):
    del argv
    cfg = FLAGS.config
    for key, value in (("image_size", FLAGS.size), ("batch_size", FLAGS.batch), ("width", FLAGS.width)):
        if value is not None:
            cfg[key] = value
    logging.set_verbosity(logging.WARNING)
    r = benchmark(cfg, FLAGS.steps)
    if FLAGS.json:
        print(json.dumps(r))
    else:
        print(f"train step {r['size']} px, batch {r['batch']} pairs, width {r['width']}, "
              f"cycle {r['cycle_strength']}, {r['precision']} on {r['device']}: "
              f"{r['ms_per_step']:.1f} ms/step, {r['pairs_per_s']:.2f} pairs/s (median of {r['steps']})")


def run():
    app.run(main)


if __name__ == "__main__":
    run()
