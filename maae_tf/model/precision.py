"""Numeric precision of a run (`config.precision`).

    "auto"             picks for the hardware and logs its choice:
                         GPU of compute capability >= 8.0 (Ampere, Hopper, …)  mixed_bfloat16
                         GPU of compute capability 7.x (Volta, Turing: float16
                           tensor cores, no bfloat16)                          mixed_float16
                         TPU                                                   mixed_bfloat16
                         CPU with AVX512-BF16 or AMX-BF16                      mixed_bfloat16
                         anything else                                         float32
                       (On Ampere+ bfloat16 runs the tensor cores as fast as float16 and needs no
                       loss scaling, so it is preferred there.)
    "float32"          everything in float32 (default)
    "mixed_float16"    float16 compute, float32 variables; both optimizers wrapped in
                       keras.optimizers.LossScaleOptimizer (optimizers.make_optimizers). For GPUs: on a
                       CPU float16 is emulated and ~6x slower than float32 (docs/stack.md), so it
                       is allowed there but logged as a warning.
    "mixed_bfloat16"   bfloat16 compute, float32 variables: ~1.6x faster training step on CPUs
                       with AVX512-BF16/AMX (`python -m maae_tf.bench`), and on Ampere+ GPUs and
                       TPUs. No loss scaling is needed.

The generator's output layer, D's logits, the VAE head and every loss stay float32 whatever the
policy (models/*.py, losses.py). The policy is global in Keras: `apply` must run before the
networks are built.
"""

from __future__ import annotations

from contextlib import contextmanager

import keras
from absl import logging

SUPPORTED = ("auto", "float32", "mixed_float16", "mixed_bfloat16")


def cpu_has_bfloat16() -> bool:
    """True when /proc/cpuinfo lists AVX512-BF16 or AMX-BF16 (Linux; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve(precision: str) -> str:
    """The policy `precision` stands for on this machine ("auto" decided here)."""
    if precision != "auto":
        return precision
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        cc = tuple(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0)))
        return "mixed_bfloat16" if cc >= (8, 0) else "mixed_float16" if cc >= (7, 0) else "float32"
    if tf.config.list_physical_devices("TPU"):
        return "mixed_bfloat16"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


@contextmanager
def policy_scope(policy: str | None = None):
    """Runs the block under `policy` (None: whatever the block sets) and puts the global policy
    back afterwards (export and benchmarks: the policy is global in Keras)."""
    old = keras.mixed_precision.global_policy().name
    if policy is not None:
        keras.mixed_precision.set_global_policy(policy)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(old)


def apply(precision: str) -> str:
    """Sets Keras' global dtype policy for `precision`; returns the policy's name."""
    if precision not in SUPPORTED:
        raise ValueError(f"precision must be one of {', '.join(SUPPORTED)}, got {precision!r}")
    policy = resolve(precision)
    if policy == "mixed_float16":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            logging.warning("precision mixed_float16 on a CPU: float16 is emulated there and much slower "
                            "than float32; use mixed_bfloat16 (AVX512-BF16/AMX CPUs) or float32")
    keras.mixed_precision.set_global_policy(policy)
    logging.info("dtype policy: %s%s", policy, " (precision=auto)" if precision == "auto" else "")
    return policy
