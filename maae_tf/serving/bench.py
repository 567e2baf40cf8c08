"""What serving costs on top of the generator itself (the command: benchmarks/serving_bench.py).

Times the same edit (uint8 [N, S, S, 3] and δ in, uint8 out) up to three ways:

  (a) keras      the in-memory Keras networks, the Editor's computation under tf.function
  (b) savedmodel the exported SavedModel reloaded with tf.saved_model.load, its serving_default
  (c) grpc       `maae_tf.serving.client.Client` through a model server given to `measure` (the
                 benchmark script gives the in-process test double of tensorflow_model_server,
                 tests/support/tf_serving_double.py): serialization + gRPC + Session::Run

and reports latency p50 / p99 at batch 1, images/s at batch 32, and each path's ratio to (a).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import tempfile
import time

import numpy as np
from absl import logging

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


def measure(editor, base: str, batch: int, latency_calls: int, throughput_calls: int, server=None) -> dict:
    """{path: {"p50_ms", "p99_ms", "images_per_s"}} for the paths of the module docstring; (c) only
    with `server`, a callable {model name: base path} → context manager of a running model server
    with a `grpc_address` (e.g. the test double's class)."""
    import tensorflow as tf

    from maae_tf.serving.export import write_savedmodel
    from maae_tf.serving.client import Client

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
    with contextlib.ExitStack() as stack:
        if server is not None:
            running = stack.enter_context(server({"bench": base}))
            client = stack.enter_context(Client(running.grpc_address, "bench", timeout=600))
            paths["grpc"] = lambda x: client.predict({"images": x, "delta": delta(len(x))})["images"]
        for name, fn in paths.items():
            lat = timed(functools.partial(fn, one), latency_calls)
            thr = timed(functools.partial(fn, many), throughput_calls, warmup=1)
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


def editor_to_time(workdir: str | None, config, image_size: int, width: float | None):
    """(Editor, what it is): the trained run `workdir`, else a float32 network of `config` at
    `image_size` (and `width`, when given) with random weights (speed does not depend on them)."""
    from maae_tf.model import precision
    from maae_tf.model.editor import Editor, load_runs
    from maae_tf.model.maae import MAAE
    from maae_tf.model.spec import ModelSpec

    if workdir:
        return Editor(*load_runs([workdir])), f"run {workdir}"
    config.image_size = image_size
    if width is not None:
        config.width = width
    with precision.policy_scope("float32"):
        models, configs, steps = [MAAE(ModelSpec.from_config(config), identity=False)], [config], [0]
    return Editor(models, configs, steps), f"random network of the config (width {config.width})"


def bench_command(editor, what: str, batch: int, latency_calls: int, throughput_calls: int, as_json: bool,
                  server=None) -> None:
    """Prints `measure` of `editor` (in a temporary folder) as a table or one JSON object, headed by
    what was timed on which machine."""
    import tensorflow as tf

    info = (f"{editor.size} px, {what}, float32, batch 1 latency over {latency_calls} calls, "
            f"batch {batch} over {throughput_calls}; TF {tf.__version__}, "
            f"{os.cpu_count()} CPU cores, GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    with tempfile.TemporaryDirectory() as tmp:
        results = measure(editor, os.path.join(tmp, "bench"), batch, latency_calls, throughput_calls, server)
    print(json.dumps({"info": info, "results": results}) if as_json else table(results, info))
