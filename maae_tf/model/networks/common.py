"""Building blocks shared by the networks: their shape (`NetworkSpec`), scaled widths, N(0, 0.02)
convolutions (paper §4.1), optional instance norm, and the 1x1 residual block of Table 1."""

from __future__ import annotations

import dataclasses

import keras
from keras import layers

LEAKY_SLOPE = 0.2
INITS = ("normal", "glorot")
NORMS = ("none", "instance")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """What shapes the encoder, decoder and discriminator (paper Table 1, docs/method.md §2)."""

    image_size: int       # S: any multiple of 32
    width: float          # every channel count of Table 1 scales by it
    latent_channels: int  # C before the width factor
    norm: str             # one of NORMS
    init: str             # one of INITS
    upsample: str         # one of decoder.UPSAMPLES


def channels(c: int, width: float) -> int:
    """Channel count `c` of Table 1 scaled by the width factor (at least 4)."""
    return max(4, int(c * width))


def init(kind: str = "normal"):
    """Kernel initialiser (biases start at zero). "normal": N(0, 0.02), the paper's (§4.1).
    "glorot": Glorot-uniform, our measured alternative for short runs: without normalisation
    layers N(0, 0.02) shrinks the signal ~1e-4x through the encoder and decoder, and a plain
    autoencoder of Table 1 learns several times slower from it (docs/method.md §2)."""
    if kind == "normal":
        return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
    if kind == "glorot":
        return keras.initializers.GlorotUniform()
    raise ValueError(f"init must be one of {INITS}, got {kind!r}")


def conv(filters: int, kernel: int, stride: int = 1, name: str | None = None, dtype=None,
         kernel_init: str = "normal"):
    """A convolution with symmetric zero padding kernel//2 (PyTorch's `padding=k//2`).

    Keras' "same" pads stride-2 layers asymmetrically (0 before, 1 after); the partial dilated
    layer's lattice is computed from symmetric padding (`encoder_geometry`), so stride-2 layers
    pad explicitly and convolve "valid".
    """
    kw = dict(kernel_initializer=init(kernel_init), bias_initializer="zeros", name=name)
    if dtype is not None:
        kw["dtype"] = dtype
    if stride == 1:
        return layers.Conv2D(filters, kernel, padding="same", **kw)
    pad = kernel // 2
    return keras.Sequential(
        [layers.ZeroPadding2D(pad), layers.Conv2D(filters, kernel, strides=stride, padding="valid", **kw)],
        name=name,
    )


def normalize(x, norm: str, name: str):
    """No normalisation in the paper; `norm="instance"` = GroupNormalization(groups=-1) (NORMS)."""
    if norm == "instance":
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, name=name)(x)
    return x


def conv_act(x, filters: int, kernel: int, stride: int, norm: str, name: str, kernel_init: str = "normal"):
    """conv -> (norm) -> LeakyReLU(0.2), one row of Table 1."""
    x = conv(filters, kernel, stride, name=name, kernel_init=kernel_init)(x)
    x = normalize(x, norm, name + "_norm")
    return layers.LeakyReLU(LEAKY_SLOPE, name=name + "_act")(x)


def residual_block(x, filters: int, name: str, kernel_init: str = "normal"):
    """Residual Block (c, 1x1) of Table 1: x' = s(x) + conv_b(LeakyReLU(conv_a(x))), where the
    shortcut s projects with a 1x1 conv when the channel count changes (256 -> 512)."""
    y = layers.Conv2D(filters, 1, kernel_initializer=init(kernel_init), name=name + "_a")(x)
    y = layers.LeakyReLU(LEAKY_SLOPE, name=name + "_act")(y)
    y = layers.Conv2D(filters, 1, kernel_initializer=init(kernel_init), name=name + "_b")(y)
    if x.shape[-1] != filters:
        x = layers.Conv2D(filters, 1, kernel_initializer=init(kernel_init), name=name + "_proj")(x)
    return layers.Add(name=name + "_add")([x, y])
