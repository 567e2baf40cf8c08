"""Encoder En with its VAE head (paper Table 1, docs/method.md §2).

    conv 64 7x7/1 -> conv 128 3x3/2 -> conv 256 3x3/2 -> 3 residual blocks (512, 1x1) -> 1x1 head
    giving mu and log sigma^2 of the latent z (S/4 x S/4 x C). Training samples
    z = mu + sigma * eps (Eq. 2's q(z|x)); inference uses z = mu.

The partial dilated layer (paper §3.2) is the encoder's last layer: `encoder_geometry` lists the
(kernel, stride, padding) of every layer from the same table the network is built from, so the
lattice M is derived from the network itself.
"""

from __future__ import annotations

import keras
from keras import layers

from maae_tf.model.lattice import ConvGeometry
from maae_tf.model.networks.common import NetworkSpec, channels, conv_act, init, residual_block

# (out channels, kernel, stride) of the convolutional stem, Table 1.
STEM = ((64, 7, 1), (128, 3, 2), (256, 3, 2))
RESIDUAL_BLOCKS = 3
DOWNSAMPLING = 4  # product of the stem's strides: latent size = S / 4


def encoder_geometry() -> list[ConvGeometry]:
    """The encoder's layers as (kernel, stride, symmetric padding), input to output."""
    geometry = [ConvGeometry(k, s, k // 2) for _, k, s in STEM]
    # two 1x1 convs per residual block and the 1x1 VAE head: they do not widen the field
    geometry += [ConvGeometry(1, 1, 0)] * (2 * RESIDUAL_BLOCKS + 1)
    return geometry


def latent_channels(spec: NetworkSpec) -> int:
    """C of the latent z: spec.latent_channels scaled by the width factor."""
    return channels(spec.latent_channels, spec.width)


def build_encoder(spec: NetworkSpec) -> keras.Model:
    """En: image [S, S, 3] in [-1, 1] -> (mu, logvar), each [S/4, S/4, C]."""
    s = spec.image_size
    x_in = keras.Input((s, s, 3), name="image")
    x = x_in
    for i, (c, k, st) in enumerate(STEM):
        x = conv_act(x, channels(c, spec.width), k, st, spec.norm, name=f"conv{i + 1}", kernel_init=spec.init)
    c = latent_channels(spec)
    for i in range(RESIDUAL_BLOCKS):
        x = residual_block(x, c, name=f"res{i + 1}", kernel_init=spec.init)
    stats = layers.Conv2D(2 * c, 1, kernel_initializer=init(spec.init), name="vae_head", dtype="float32")(x)
    mu, logvar = layers.Lambda(lambda t: (t[..., :c], t[..., c:]), name="split", dtype="float32")(stats)
    return keras.Model(x_in, [mu, logvar], name="encoder")
