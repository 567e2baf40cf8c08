"""The networks of paper Table 1: encoder (with its VAE head), decoder, attribute-aware
discriminator, and the frozen identity network F_ID."""

from maae_tf.model.networks.common import INITS, NORMS, NetworkSpec, channels
from maae_tf.model.networks.decoder import UPSAMPLES, build_decoder
from maae_tf.model.networks.discriminator import ATTRIBUTE, NEGATIVE, POSITIVE, build_discriminator
from maae_tf.model.networks.encoder import build_encoder, encoder_geometry
from maae_tf.model.networks.identity import SOURCES, IdentitySpec, build_identity

__all__ = [
    "NetworkSpec", "IdentitySpec", "channels", "build_encoder", "encoder_geometry", "build_decoder",
    "build_discriminator", "build_identity", "ATTRIBUTE", "NEGATIVE", "POSITIVE", "INITS", "NORMS",
    "UPSAMPLES", "SOURCES",
]
