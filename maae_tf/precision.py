"""Numeric precision of a run (`config.precision`).

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

SUPPORTED = ("float32", "mixed_bfloat16")


def apply(precision: str) -> str:
    """Sets Keras' global dtype policy for `precision`; returns the policy's name."""
    if precision not in SUPPORTED:
        raise ValueError(f"precision must be one of {', '.join(SUPPORTED)}, got {precision!r}"
                         + (" (float16 needs loss scaling, not wired into the training step yet)"
                            if precision == "mixed_float16" else ""))
    keras.mixed_precision.set_global_policy(precision)
    logging.info("dtype policy: %s", precision)
    return precision
