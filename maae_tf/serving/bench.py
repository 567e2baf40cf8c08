"""`python -m maae_tf.serving.bench`: what serving costs on top of the generator itself.

    python -m maae_tf.serving.bench [--config=configs/celeba.py | --workdir=runs/x] [--size=128]
                                    [--width=W] [--latency_calls=30] [--throughput_calls=4]

Times the same edit (uint8 [N, S, S, 3] and δ in, uint8 out) three ways:

  (a) keras      the in-memory Keras networks, the Editor's computation under tf.function
  (b) savedmodel the exported SavedModel reloaded with tf.saved_model.load, its serving_default
  (c) grpc       `maae_tf.serving.client.Client` through `ModelServerDouble` (in-process test
                 double of tensorflow_model_server, 127.0.0.1): serialization + gRPC + Session::Run

and prints latency p50 / p99 at batch 1, images/s at batch 32, and each path's ratio to (a).
With --workdir the run's trained networks are used; otherwise a network of --config is built with
random weights (speed does not depend on the weights). `--json` prints one JSON object instead.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS


DEFAULT_CONFIG = os.path.join("configs", "celeba.py")


def define_flags() -> None:
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Network config.",
                                    lock_config=False)
    flags.DEFINE_string("workdir", None, "Benchmark this trained run instead of a random network of --config.")
    flags.DEFINE_integer("size", 128, "Image size (ignored with --workdir: the run's size).")
    flags.DEFINE_float("width", None, "Width multiplier (default: the config's).")
    flags.DEFINE_integer("latency_calls", 30, "Timed calls at batch 1.")
    flags.DEFINE_integer("throughput_calls", 4, "Timed calls at batch 32.")
    flags.DEFINE_integer("batch", 32, "Batch of the throughput measurement.")
    flags.DEFINE_bool("json", False, "Print one JSON object.")


def timed(fn, calls: int, warmup: int = 2) -> np.ndarray:
    """Seconds per call of fn() over `calls` calls, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(calls):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return np.asarray(out)


def measure(editor, base: str, batch: int, latency_calls: int, throughput_calls: int) -> dict:
    """{path: {"p50_ms", "p99_ms", "images_per_s"}} for the three paths (module docstring)."""
    import tensorflow as tf

    from maae_tf.serving.export import write_savedmodel
    from maae_tf.serving.client import Client
    from maae_tf.serving.double import ModelServerDouble

    s = editor.size
    rng = np.random.default_rng(0)
    one = rng.integers(0, 256, (1, s, s, 3), dtype=np.uint8)
    many = rng.integers(0, 256, (batch, s, s, 3), dtype=np.uint8)
    delta = lambda n: np.full((n,) if editor.k == 1 else (n, editor.k), 2.0, np.float32)

    write_savedmodel(editor, base, 1, model_name="bench")
    keras_fn = tf.function(editor.edit, input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8),
                                                         tf.TensorSpec(None, tf.float32)])
    saved_fn = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]
    paths = {
        "keras": lambda x: keras_fn(tf.constant(x), tf.constant(delta(len(x))))["images"].numpy(),
        "savedmodel": lambda x: saved_fn(images=tf.constant(x), delta=tf.constant(delta(len(x))))["images"].numpy(),
    }
    results = {}
    with ModelServerDouble({"bench": base}) as server, Client(server.grpc_address, "bench", timeout=600) as client:
        paths["grpc"] = lambda x: client.predict({"images": x, "delta": delta(len(x))})["images"]
        for name, fn in paths.items():
            lat = timed(lambda: fn(one), latency_calls)
            thr = timed(lambda: fn(many), throughput_calls, warmup=1)
            results[name] = {"p50_ms": float(np.percentile(lat, 50) * 1e3),
                             "p99_ms": float(np.percentile(lat, 99) * 1e3),
                             "images_per_s": float(batch / np.median(thr))}
            logging.info("%s: %s", name, results[name])
    base_ = results["keras"]
    for r in results.values():
        r["p50_ratio"] = r["p50_ms"] / base_["p50_ms"]
        # time per image relative to (a): the "≤ 1.1× (a)" reads as cost, not speed
        r["batch_time_ratio"] = base_["images_per_s"] / r["images_per_s"]
    return results


def table(results: dict, info: str) -> str:
    lines = [info, "",
             "| path | p50 ms (batch 1) | p99 ms (batch 1) | images/s (batch 32) | p50 / (a) | batch-32 time / (a) |",
             "|---|---|---|---|---|---|"]
    names = {"keras": "(a) Keras generator, in memory", "savedmodel": "(b) reloaded SavedModel signature",
             "grpc": "(c) client → gRPC → server double"}
    for key, r in results.items():
        lines.append(f"| {names[key]} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['images_per_s']:.1f} | "
                     f"{r['p50_ratio']:.2f}× | {r['batch_time_ratio']:.2f}× |")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    import tensorflow as tf

    from maae_tf.model import precision
    from maae_tf.model.editor import Editor, load_runs
    from maae_tf.model.maae import MAAE
    from maae_tf.model.spec import ModelSpec

    if FLAGS.workdir:
        models, configs, steps = load_runs([FLAGS.workdir])
        what = f"run {FLAGS.workdir}"
    else:
        config = FLAGS.config
        config.image_size = FLAGS.size
        if FLAGS.width is not None:
            config.width = FLAGS.width
        with precision.policy_scope("float32"):
            models, configs, steps = [MAAE(ModelSpec.from_config(config), identity=False)], [config], [0]
        what = f"random network of the config (width {config.width})"
    editor = Editor(models, configs, steps)
    info = (f"{editor.size} px, {what}, float32, batch 1 latency over {FLAGS.latency_calls} calls, "
            f"batch {FLAGS.batch} over {FLAGS.throughput_calls}; TF {tf.__version__}, "
            f"{os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(editor, os.path.join(tmp, "bench"), FLAGS.batch, FLAGS.latency_calls,
                          FLAGS.throughput_calls)
    if FLAGS.json:
        print(json.dumps({"info": info, "results": results}))
    else:
        print(table(results, info))


def run():
    from maae_tf.config import run_command

    run_command(main, define_flags, DEFAULT_CONFIG)


if __name__ == "__main__":
    run()
