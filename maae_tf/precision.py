"""Numeric precision of a run (`config.precision`).

    "auto"             mixed_bfloat16 where the hardware computes bfloat16 natively (GPUs of compute
                       capability >= 8.0; CPUs with AVX512-BF16 or AMX-BF16), else float32;
                       the choice is logged
    "float32"          everything in float32 (default)
    "mixed_bfloat16"   bfloat16 compute, float32 variables: ~1.5x faster training step on CPUs
                       with AVX512-BF16/AMX (measured by `python -m maae_tf.bench`), and on
                       Ampere+ GPUs and TPUs. No loss scaling is needed.

The generator's output layer, D's logits, the VAE head and every loss stay float32 whatever the
policy (models/*.py, losses.py). "mixed_float16" needs loss-scaled optimizers and is refused with
a clear error until the training step wraps them. The policy is global in Keras: `apply` must run
before the networks are built.
"""

from __future__ import annotations

import keras
from absl import logging

SUPPORTED = ("auto", "float32", "mixed_bfloat16")


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
        cc = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability", (0, 0))
        return "mixed_bfloat16" if tuple(cc) >= (8, 0) else "float32"
    return "mixed_bfloat16" if cpu_has_bfloat16() else "float32"


def apply(precision: str) -> str:
    """Sets Keras' global dtype policy for `precision`; returns the policy's name."""
    if precision not in SUPPORTED:
        raise ValueError(f"precision must be one of {', '.join(SUPPORTED)}, got {precision!r}"
                         + (" (float16 needs loss scaling, not wired into the training step yet)"
                            if precision == "mixed_float16" else ""))
    policy = resolve(precision)
    keras.mixed_precision.set_global_policy(policy)
    logging.info("dtype policy: %s%s", policy, " (precision=auto)" if precision == "auto" else "")
    return policy
