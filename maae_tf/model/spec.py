"""What a model is made of, as typed values: `ModelSpec.from_config(config)` reads a run's
ConfigDict (maae_tf/config.py) once, and the model and its parts take the spec's pieces."""

from __future__ import annotations

import dataclasses

from maae_tf.model import augment
from maae_tf.model.losses import LossWeights
from maae_tf.model.networks import IdentitySpec, NetworkSpec
from maae_tf.model.optimizers import OptimizerSpec


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """The networks, losses, optimizers and training recipe of one M-AAE (docs/method.md §2-§5)."""

    networks: NetworkSpec
    identity: IdentitySpec
    losses: LossWeights
    optimizer: OptimizerSpec
    delta_mask: str               # lattice.MODES: where δ goes in the latent
    delta_max: float              # δ0
    cycle_strength: str           # maae.CYCLE_STRENGTHS
    adversarial_edits: str        # maae.ADVERSARIAL_EDITS
    d_augment: tuple[str, ...]    # DiffAugment parts of what D sees (augment.POLICIES), () = none
    seed: int                     # seeds every random draw of the training step

    @classmethod
    def from_config(cls, config) -> ModelSpec:
        """The spec of the run `config` (a ConfigDict of maae_tf.config.base_config's keys)."""
        return cls(networks=_pick(NetworkSpec, config), identity=_pick(IdentitySpec, config.identity),
                   losses=_pick(LossWeights, config.loss), optimizer=_pick(OptimizerSpec, config),
                   delta_mask=config.delta_mask, delta_max=config.delta_max,
                   cycle_strength=config.cycle_strength, adversarial_edits=config.adversarial_edits,
                   d_augment=augment.parse(config.loss.d_augment), seed=config.seed)


def _pick(cls, values):
    """A `cls` from the keys of `values` named as its fields (the spec's names are the config's)."""
    return cls(**{field.name: values[field.name] for field in dataclasses.fields(cls)})
