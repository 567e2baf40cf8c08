"""Whether a run's settings can work, checked before anything is written (`python -m maae_tf.train`)."""

from __future__ import annotations

import ml_collections

from maae_tf import attributes
from maae_tf.evaluation import identity
from maae_tf.model import augment, precision
from maae_tf.training import distribute


def check(c: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first setting that cannot work."""
    attributes.resolve(c.attr)
    augment.parse(c.loss.get("d_augment", ""))
    if c.image_size % 32 or c.image_size < 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {c.image_size}")
    if c.split_protocol not in ("official", "paper"):
        raise ValueError(f"split_protocol must be 'official' or 'paper', got {c.split_protocol!r}")
    if c.split_test_per_attribute < 2:
        raise ValueError(f"split_test_per_attribute must be at least 2, got {c.split_test_per_attribute}")
    if c.delta_mask not in ("lattice", "entire"):
        raise ValueError(f"delta_mask must be 'lattice' or 'entire', got {c.delta_mask!r}")
    if c.adversarial_edits not in ("all", "flipping"):
        raise ValueError(f"adversarial_edits must be 'all' or 'flipping', got {c.adversarial_edits!r}")
    if c.cycle_strength not in ("random", "fixed"):
        raise ValueError(f"cycle_strength must be 'random' or 'fixed', got {c.cycle_strength!r}")
    if c.norm not in ("none", "instance"):
        raise ValueError(f"norm must be 'none' or 'instance', got {c.norm!r}")
    if c.lr_schedule not in ("constant", "cosine"):
        raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {c.lr_schedule!r}")
    if c.init not in ("normal", "glorot"):
        raise ValueError(f"init must be 'normal' or 'glorot', got {c.init!r}")
    if c.upsample not in ("transpose", "resize"):
        raise ValueError(f"upsample must be 'transpose' or 'resize', got {c.upsample!r}")
    if c.identity.source not in ("imagenet", "h5", "random", "none"):
        raise ValueError(f"identity.source must be 'imagenet', 'h5', 'random' or 'none', got {c.identity.source!r}")
    if c.loss.alpha_keep and c.adversarial_edits != "all":
        raise ValueError("loss.alpha_keep needs the keeping edits: set adversarial_edits='all' "
                         f"(got {c.adversarial_edits!r})")
    if c.identity.source == "none" and c.loss.alpha_id:
        raise ValueError(f"identity.source='none' trains without the identity loss: set loss.alpha_id=0 "
                         f"(got {c.loss.alpha_id})")
    if c.precision not in precision.SUPPORTED:
        precision.apply(c.precision)  # raises, naming the supported values
    if c.strategy not in distribute.STRATEGIES:
        distribute.resolve(c.strategy)  # raises, naming the supported values
    if identity.embedder_kind(c.eval.identity_network) not in identity.EMBEDDERS:
        raise ValueError(f"eval.identity_network must be one of {', '.join(identity.EMBEDDERS)}, "
                         f"got {c.eval.identity_network!r}")
    if c.eval.sweep_steps < 2 or c.eval.every < 0 or c.eval.batch < 2:
        raise ValueError("eval.sweep_steps must be >= 2, eval.every >= 0 and eval.batch >= 2")
    if c.batch_size < 1 or c.width <= 0:
        raise ValueError("batch_size and width must be positive")
    # bookkeeping: checked here, before anything is written (0 would fail mid-run: a division by
    # checkpoint_every, TensorFlow's own name max_to_keep for keep_checkpoints)
    if c.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {c.checkpoint_every}")
    if c.keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints must be at least 1 (the checkpoints kept), got {c.keep_checkpoints}")
