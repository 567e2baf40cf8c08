"""Whether a run's settings can work, checked before anything is written (`python -m maae_tf.train`)."""

from __future__ import annotations

import functools

import ml_collections

from maae_tf import attributes
from maae_tf.data import splits
from maae_tf.evaluation import identity as face_identity
from maae_tf.model import augment, lattice, maae, networks, optimizers, precision
from maae_tf.training import distribute

# The settings that name one of a few choices, each with the values its owning module defines.
CHOICES = {
    "split_protocol": splits.PROTOCOLS,
    "delta_mask": lattice.MODES,
    "adversarial_edits": maae.ADVERSARIAL_EDITS,
    "cycle_strength": maae.CYCLE_STRENGTHS,
    "norm": networks.NORMS,
    "lr_schedule": optimizers.LR_SCHEDULES,
    "init": networks.INITS,
    "upsample": networks.UPSAMPLES,
    "identity.source": networks.SOURCES,
    "eval.identity_network": face_identity.EMBEDDERS,
}
# old names still accepted ({old: current}, each owned by the module of CHOICES), warned at use
RENAMED = {"eval.identity_network": face_identity.RENAMED}


def check(c: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first setting that cannot work."""
    attributes.resolve(c.attr)
    augment.parse(c.loss.get("d_augment", ""))
    if c.image_size % 32 or c.image_size < 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {c.image_size}")
    for key, allowed in CHOICES.items():
        value = _value(c, key)
        check_choice(key, RENAMED.get(key, {}).get(value, value), allowed)
    if c.split_test_per_attribute < 2:
        raise ValueError(f"split_test_per_attribute must be at least 2, got {c.split_test_per_attribute}")
    if c.loss.alpha_keep and c.adversarial_edits != "all":
        raise ValueError("loss.alpha_keep needs the keeping edits: set adversarial_edits='all' "
                         f"(got {c.adversarial_edits!r})")
    if c.loss.d_reconstruction and not c.loss.alpha_gan_reconstruction:
        raise ValueError("loss.d_reconstruction teaches D to reject G(x, 0), which only "
                         "loss.alpha_gan_reconstruction makes G answer: set it > 0 "
                         f"(got {c.loss.alpha_gan_reconstruction})")
    if c.loss.cls_reconstruction and not c.loss.alpha_cls:
        raise ValueError("loss.cls_reconstruction weighs D's attribute logit on G(x, 0), which only "
                         f"loss.alpha_cls > 0 gives D (got {c.loss.alpha_cls})")
    if c.ema_warmup and not c.ema_momentum:
        raise ValueError("ema_warmup warms up the moving average of G's weights, which only "
                         "ema_momentum > 0 keeps (got 0)")
    if c.identity.source == "none" and c.loss.alpha_id:
        raise ValueError(f"identity.source='none' trains without the identity loss: set loss.alpha_id=0 "
                         f"(got {c.loss.alpha_id})")
    if c.precision not in precision.SUPPORTED:
        precision.apply(c.precision)  # raises, naming the supported values
    if c.strategy not in distribute.STRATEGIES:
        distribute.resolve(c.strategy)  # raises, naming the supported values
    if c.eval.sweep_steps < 2 or c.eval.every < 0 or c.eval.batch < 2:
        raise ValueError("eval.sweep_steps must be >= 2, eval.every >= 0 and eval.batch >= 2")
    if not 0 <= c.ema_momentum < 1:
        raise ValueError(f"ema_momentum must be in [0, 1) (0 = no moving average of G), got {c.ema_momentum}")
    if c.batch_size < 1 or c.width <= 0:
        raise ValueError("batch_size and width must be positive")
    # bookkeeping: checked here, before anything is written (0 would fail mid-run: a division by
    # checkpoint_every, TensorFlow's own name max_to_keep for keep_checkpoints)
    if c.checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be a positive number of steps, got {c.checkpoint_every}")
    if c.keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints must be at least 1 (the checkpoints kept), got {c.keep_checkpoints}")


def check_choice(key: str, value, allowed: tuple) -> None:
    """Raises ValueError "KEY must be 'a', 'b' or 'c', got VALUE" unless `value` is in `allowed`."""
    if value not in allowed:
        quoted = [repr(v) for v in allowed]
        raise ValueError(f"{key} must be {', '.join(quoted[:-1])} or {quoted[-1]}, got {value!r}")


def _value(c: ml_collections.ConfigDict, key: str):
    """The setting at dotted `key` ("identity.source")."""
    return functools.reduce(getattr, key.split("."), c)
