"""Training-step benchmark: speed, arithmetic and the input pipeline of a config, beside a peer.

    python -m maae_tf.bench --config=configs/quickstart.py --image_size=64 --batch=8 --precision=float32,mixed_bfloat16
    python -m maae_tf.bench --config=configs/celeba.py --image_size=128 --batch=4 --width=0.25 --json

For the config at the given size, batch and width it prints

- the analytic FLOPs of one training step (`step_flops`: 2 × multiply-accumulates of every
  convolution in every forward pass `MAAE.train_step` makes, backward counted as 2 × the forward
  of each pass gradients flow through; bias adds, activations, losses and Adam left out);
- this device's measured matmul peak in float32 and bfloat16 (square 2048² matmuls, best of 10);
- per precision (--precision, default float32 and what precision=auto picks here): the real
  train_step's median ms/step over --steps timed steps on random tensors (after 2 warm-up
  steps), pairs/s, achieved GFLOP/s and its share of the matching matmul peak;
- the tf.data pipeline's pairs/s on the config's dataset (`maae_tf.data.pipeline.pairs_dataset`,
  decoding, cropping, masks), when the dataset exists;
- when the PyTorch reference step (`REFERENCE`) and a Python with torch are found (--torch_python,
  default /tmp/torchvenv/bin/python), the PyTorch reference step at the same size, batch and width,
  run in the same command, and the ratio of pairs/s.

The reference uses transposed-conv upsampling and a fixed-strength cycle; compare like for like with
`--config=configs/celeba.py --width=0.25 --config.cycle_strength=fixed`. `--json` prints one JSON
object (the first precision's figures at the top level, every precision under "runs").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf.model import precision as precision_lib
from maae_tf.model.maae import build_model
from maae_tf.model.spec import ModelSpec

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REFERENCE = os.path.join(os.path.dirname(REPO), "shared", "bench", "torch_reference.py")



# ----- arithmetic ---------------------------------------------------------------------------------
def forward_macs(model) -> int:
    """Multiply-accumulates of one forward pass of a functional Keras model for ONE image: every
    Conv2D, Conv2DTranspose and Dense layer, nested models included."""
    from keras import layers

    total = 0
    for layer in model.layers:
        if hasattr(layer, "layers"):
            total += forward_macs(layer)
        elif isinstance(layer, layers.Conv2DTranspose):
            kh, kw, _, cin = layer.kernel.shape  # transposed kernels are (kh, kw, out, in)
            h, w = layer.input.shape[1:3]
            total += h * w * kh * kw * cin * layer.filters
        elif isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            h, w = layer.output.shape[1:3]
            total += h * w * kh * kw * cin * cout
        elif isinstance(layer, layers.Dense):
            cin, cout = layer.kernel.shape
            total += int(np.prod(layer.output.shape[1:-1] or [1])) * cin * cout
    return int(total)


def pass_counts(cfg) -> dict:
    """Forward passes per PAIR of the training step, and forward-equivalents with the backward
    counted as 2 × forward for every pass gradients flow through (MAAE.train_step):

      En  x1, x2 once (reconstruction and edits share μ, σ) + the cycle's way back      4
      De  r1 r2 p1 n2 (+ n1 p2 with adversarial_edits=all) (+ q1 q2 with
          cycle_strength=random) + c1 c2                                            6 | 8 | 10
      D   the judged edits in the G loss (2, or 4 with all) + D(x1) D(x2) and the
          same edits in the D step                                                   6 | 10
      ID  ID(x1) ID(x2) ID(p1) ID(n2)                                                    4
    backward: every En/De pass; every D pass; ID(p1), ID(n2) (2)."""
    edits = 4 if cfg.get("adversarial_edits", "all") == "all" else 2
    de = 4 + (edits - 2) + (2 if cfg.cycle_strength == "random" else 0) + 2
    d = 2 * edits + 2
    forward = {"encoder": 4, "decoder": de, "discriminator": d, "identity": 4}
    backward = {"encoder": 4, "decoder": de, "discriminator": d, "identity": 2}
    return {k: forward[k] + 2 * backward[k] for k in forward}


def step_flops(model, cfg) -> dict:
    """{"total": FLOPs of one training step of cfg.batch_size pairs, and per network}."""
    macs = {"encoder": forward_macs(model.encoder), "decoder": forward_macs(model.decoder),
            "discriminator": forward_macs(model.discriminator), "identity": forward_macs(model.identity)}
    per = {k: 2 * macs[k] * n * cfg.batch_size for k, n in pass_counts(cfg).items()}
    per["total"] = sum(per.values())
    return per


def matmul_peak(dtype: str, n: int = 2048, reps: int = 10) -> float:
    """Best GFLOP/s of an n×n matmul in `dtype` on the default device."""
    x = tf.cast(tf.random.uniform((n, n)), dtype)
    y = tf.cast(tf.random.uniform((n, n)), dtype)
    mm = tf.function(lambda: tf.linalg.matmul(x, y))
    for _ in range(2):
        mm().numpy()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        mm().numpy()
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


# ----- timing -------------------------------------------------------------------------------------
def random_pairs(batch: int, size: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    x = lambda: tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32))
    m = lambda: tf.constant((rng.uniform(size=(batch, size, size, 1)) > 0.5).astype(np.float32))
    return {"x1": x(), "x2": x(), "m1": m(), "m2": m()}


def time_step(cfg, steps: int) -> tuple[float, object]:
    """Median seconds of the real train_step of cfg's model (under cfg.precision); and the model."""
    cfg = cfg.copy_and_resolve_references()
    cfg.identity.source = "random"
    precision_lib.apply(cfg.precision)
    model = build_model(ModelSpec.from_config(cfg))
    train_step = tf.function(model.train_step, jit_compile=bool(cfg.jit_compile))
    data = random_pairs(cfg.batch_size, cfg.image_size)
    for _ in range(2):  # trace + warm-up
        float(train_step(data)["g_loss"])
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        float(train_step(data)["g_loss"])
        times.append(time.perf_counter() - t)
    return float(np.median(times)), model


def pipeline_pairs_per_s(cfg, batches: int) -> tuple[float | None, str]:
    """Pairs/s the tf.data pipeline delivers on cfg's dataset, or (None, why not)."""
    from maae_tf.data import pipeline

    if batches <= 0:
        return None, "skipped"
    try:
        pipeline.check_layout(cfg.data_dir)
    except (FileNotFoundError, ValueError):
        return None, f"no dataset at {cfg.data_dir}"
    it = iter(pipeline.pairs_dataset(cfg, split="train"))
    for _ in range(3):
        next(it)
    t = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * cfg.batch_size / (time.perf_counter() - t), cfg.data_dir


def torch_reference(python: str, reference: str, size: int, batch: int, width: float, steps: int) -> dict | None:
    """Runs the PyTorch reference step with the same flags; None when it is not available."""
    if not python or not os.path.exists(reference) or not os.path.exists(python):
        return None
    r = subprocess.run([python, reference, "--size", str(size), "--batch", str(batch), "--width", str(width),
                        "--steps", str(steps)], capture_output=True, text=True, timeout=3600)
    m = re.search(r"^(torch .*?): ([\d.]+) ms/step, ([\d.]+) pairs/s", r.stdout, re.M)
    if r.returncode != 0 or not m:
        logging.warning("torch reference failed: %s", (r.stderr or r.stdout)[-500:])
        return None
    return {"what": m.group(1), "ms_per_step": float(m.group(2)), "pairs_per_s": float(m.group(3))}


def benchmark(cfg, precisions, steps: int, pipeline_batches: int = 0, torch_python: str = "",
              reference: str = REFERENCE) -> dict:
    """Every figure of the module docstring, as a dict."""
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    runs, flops = [], None
    for p in precisions:

        c = cfg.copy_and_resolve_references()
        c.precision = precision_lib.resolve(p)
        with precision_lib.policy_scope():  # time_step sets c.precision's policy; put the old one back
            seconds, model = time_step(c, steps)
        flops = flops or step_flops(model, c)
        achieved = flops["total"] / seconds / 1e9
        peak = peaks["bfloat16" if c.precision == "mixed_bfloat16" else "float32"]
        runs.append({"precision": c.precision, "ms_per_step": round(1000 * seconds, 1),
                     "pairs_per_s": round(c.batch_size / seconds, 2), "achieved_gflops": round(achieved, 1),
                     "share_of_peak": round(achieved / peak, 3)})
    pipe, pipe_source = pipeline_pairs_per_s(cfg, pipeline_batches)
    ref = torch_reference(torch_python, reference, cfg.image_size, cfg.batch_size, cfg.width, steps)
    for r in runs:
        r["vs_torch"] = round(r["pairs_per_s"] / ref["pairs_per_s"], 2) if ref else None
    return {"size": cfg.image_size, "batch": cfg.batch_size, "width": cfg.width, "upsample": cfg.upsample,
            "cycle_strength": cfg.cycle_strength, "jit_compile": bool(cfg.jit_compile), "steps": steps,
            "step_gflop": round(flops["total"] / 1e9, 2),
            "step_gflop_per_network": {k: round(v / 1e9, 2) for k, v in flops.items() if k != "total"},
            "matmul_peak_gflops": round(peaks["float32"], 1), "matmul_peak_bf16_gflops": round(peaks["bfloat16"], 1),
            "pipeline_pairs_per_s": round(pipe, 1) if pipe else None, "pipeline_source": pipe_source,
            "torch_reference": ref, "torch_reference_note": None if ref else (
                "skipped (--torch_python is empty)" if not torch_python else
                f"not found ({reference} or {torch_python} missing, or the run failed)"),
            "device": device_name(), "runs": runs, **runs[0]}


def device_name() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    return f"CPU x{os.cpu_count()}" + (" (AVX512-BF16/AMX)" if precision_lib.cpu_has_bfloat16() else "")


def report(r: dict) -> str:
    lines = [f"train step: {r['size']} px, batch {r['batch']} pairs, width {r['width']}, upsample {r['upsample']}, "
             f"cycle {r['cycle_strength']}, jit {r['jit_compile']}, on {r['device']}",
             f"step FLOPs (analytic): {r['step_gflop']:.2f} GFLOP = " + " + ".join(
                 f"{k} {v:.2f}" for k, v in r["step_gflop_per_network"].items()),
             f"matmul peak: float32 {r['matmul_peak_gflops']:.1f} GFLOP/s, bfloat16 {r['matmul_peak_bf16_gflops']:.1f} GFLOP/s",
             "",
             "| precision | ms/step | pairs/s | GFLOP/s | share of peak | vs torch |",
             "|---|---|---|---|---|---|"]
    for x in r["runs"]:
        vs = f"{x['vs_torch']:.2f}×" if x["vs_torch"] else "n/a"
        lines.append(f"| {x['precision']} | {x['ms_per_step']:.1f} | {x['pairs_per_s']:.2f} | {x['achieved_gflops']:.1f} | "
                     f"{100 * x['share_of_peak']:.0f} % | {vs} |")
    lines.append("")
    lines.append(f"input pipeline: {r['pipeline_pairs_per_s']:.1f} pairs/s ({r['pipeline_source']})"
                 if r["pipeline_pairs_per_s"] else f"input pipeline: n/a ({r['pipeline_source']})")
    ref = r["torch_reference"]
    lines.append(f"PyTorch reference ({ref['what']}): {ref['ms_per_step']:.1f} ms/step, {ref['pairs_per_s']:.2f} pairs/s"
                 if ref else f"PyTorch reference: n/a ({r.get('torch_reference_note') or 'not run'})")
    return "\n".join(lines)


def bench_command(cfg, image_size, batch, width, precisions, steps, pipeline_batches, torch_python, reference,
                  as_json: bool) -> None:
    """`python -m maae_tf.bench`: `benchmark` of `cfg` at the given image size, batch and width
    (None: the config's), printed as a report or one JSON object; an unknown precision ends in one
    `error:` line and exit 2."""
    for key, value in (("image_size", image_size), ("batch_size", batch), ("width", width)):
        if value is not None:
            cfg[key] = value
    logging.set_verbosity(logging.WARNING)
    for p in precisions:
        if p not in precision_lib.SUPPORTED:
            print(f"error: --precision takes {', '.join(precision_lib.SUPPORTED)}, got {p!r}", file=sys.stderr)
            sys.exit(2)
    precisions = list(dict.fromkeys(precision_lib.resolve(p) for p in precisions))
    r = benchmark(cfg, precisions, steps, pipeline_batches, torch_python, reference)
    print(json.dumps(r) if as_json else report(r))
