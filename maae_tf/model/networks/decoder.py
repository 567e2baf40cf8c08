"""Decoder De (paper Table 1, docs/method.md §2).

    3 residual blocks (512, 1x1) -> up x2 to 256 (3x3) -> up x2 to 128 (3x3) -> conv 64 7x7
    -> conv 3 7x7 + tanh (kept float32 under mixed precision).

Upsampling: stride-2 transposed convolutions (Table 1's FLOP budget, `upsample="transpose"`), or
nearest resize + 3x3 conv (`upsample="resize"`, 4x the FLOPs in those layers) against the
checkerboard artefacts peer projects report.
"""

from __future__ import annotations

import keras
from keras import layers

from maae_tf.model.networks.common import (LEAKY_SLOPE, NetworkSpec, channels, conv_act, init, normalize,
                                           residual_block)
from maae_tf.model.networks.encoder import RESIDUAL_BLOCKS, latent_channels

UPSAMPLING = ((256, 3), (128, 3))
UPSAMPLES = ("transpose", "resize")


def build_decoder(spec: NetworkSpec) -> keras.Model:
    """De: latent [S/4, S/4, C] -> image [S, S, 3] in [-1, 1] (float32)."""
    h = spec.image_size // 4
    c = latent_channels(spec)
    z_in = keras.Input((h, h, c), name="latent")
    x = z_in
    for i in range(RESIDUAL_BLOCKS):
        x = residual_block(x, c, name=f"res{i + 1}", kernel_init=spec.init)
    for i, (ch, k) in enumerate(UPSAMPLING):
        name = f"up{i + 1}"
        filters = channels(ch, spec.width)
        if spec.upsample == "transpose":
            x = layers.Conv2DTranspose(filters, k, strides=2, padding="same",
                                       kernel_initializer=init(spec.init), name=name)(x)
        else:
            x = layers.UpSampling2D(2, interpolation="nearest", name=name + "_resize")(x)
            x = layers.Conv2D(filters, k, padding="same", kernel_initializer=init(spec.init), name=name)(x)
        x = normalize(x, spec.norm, name + "_norm")
        x = layers.LeakyReLU(LEAKY_SLOPE, name=name + "_act")(x)
    x = conv_act(x, channels(64, spec.width), 7, 1, spec.norm, name="conv", kernel_init=spec.init)
    x = layers.Conv2D(3, 7, padding="same", kernel_initializer=init(spec.init), dtype="float32", name="to_rgb")(x)
    out = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(z_in, out, name="decoder")
