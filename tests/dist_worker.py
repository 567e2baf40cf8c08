"""Helper process of tests/test_distribute.py (not a test module): trains a tiny MAAE for a few
steps under one strategy and saves the final weights.

    python tests/dist_worker.py one_device|mirrored|multi_worker OUT.npz [INIT.npz]

one_device writes its initial weights to INIT.npz when given; the others start from INIT.npz.
mirrored splits the CPU into two logical devices (it must run before any other TensorFlow op, so
it gets its own process); multi_worker reads TF_CONFIG (one process per worker).
"""

from __future__ import annotations

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

GLOBAL_BATCH, SIZE, STEPS = 4, 32, 3


def batches() -> tf.data.Dataset:
    """STEPS fixed global batches, the same in every process."""
    rng = np.random.default_rng(0)
    n = GLOBAL_BATCH * STEPS
    x = lambda: rng.uniform(-1, 1, (n, SIZE, SIZE, 3)).astype(np.float32)
    m = lambda: (rng.uniform(size=(n, SIZE, SIZE, 1)) > 0.5).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices({"x1": x(), "x2": x(), "m1": m(), "m2": m()}).batch(GLOBAL_BATCH)


def main(kind: str, out: str, init: str | None) -> None:
    from conftest import tiny_spec  # tests/ is sys.path[0]: this file runs as a script there
    from maae_tf.training import distribute
    from maae_tf.model.maae import build_model

    if kind == "mirrored":
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    else:
        strategy = distribute.make_strategy(kind)
    import keras

    keras.utils.set_random_seed(0)  # the same initial weights in every process and every run
    with strategy.scope():
        model = build_model(tiny_spec(image_size=SIZE, batch_size=GLOBAL_BATCH, init="glorot"))
    if kind == "one_device" and init:
        np.savez(init, *model.get_weights())
    elif init:
        with np.load(init) as f:
            model.set_weights([f[f"arr_{i}"] for i in range(len(f.files))])
    if kind == "multi_worker":
        logs = distribute.custom_loop(model, strategy, batches(), STEPS)
    else:
        history = model.fit(batches(), epochs=1, steps_per_epoch=STEPS, verbose=0, shuffle=False)
        logs = {k: v[-1] for k, v in history.history.items()}
    assert int(model.g_optimizer.iterations.numpy()) == STEPS
    weights = model.encoder.get_weights() + model.decoder.get_weights() + model.discriminator.get_weights()
    np.savez(out, *weights, replicas=strategy.num_replicas_in_sync, g_loss=float(logs["g_loss"]))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None)
