"""Attribute-aware discriminator D (paper Table 1, docs/method.md §4).

    5 x (conv 3x3/2 + LeakyReLU) with 64, 128, 256, 512, 1024 channels, then a 2x2 conv to logits.

Two logits instead of the paper's one (our decision, docs/method.md §4): index NEGATIVE = "real image
that lacks the attribute", index POSITIVE = "real image that has it". G(x1, +δ) must pass the
POSITIVE head and G(x2, -δ) the NEGATIVE head, which is what tells +δ its direction. At S = 64
the 2x2 conv yields one score; at larger S a patch map, averaged here (at
S = 32, for tests, the map is 1x1 already and the last conv is 1x1). Logits are float32.
"""

from __future__ import annotations

import keras
from keras import layers

from maae_tf.model.networks.common import NetworkSpec, channels, conv_act, init

NEGATIVE, POSITIVE = 0, 1
ATTRIBUTE = 2  # a third logit, P(attribute), only with loss.alpha_cls > 0 (docs/method.md §10)
CHANNELS = (64, 128, 256, 512, 1024)


def build_discriminator(spec: NetworkSpec, attribute_logit: bool = False) -> keras.Model:
    """D: image [S, S, 3] -> logits [2] (NEGATIVE, POSITIVE), or [3] with the ATTRIBUTE logit
    (`attribute_logit`, when loss.alpha_cls > 0); sigmoid gives the fidelity score."""
    s = spec.image_size
    x_in = keras.Input((s, s, 3), name="image")
    x = x_in
    for i, c in enumerate(CHANNELS):
        # no normalisation in D (paper); instance norm would be per sample too
        x = conv_act(x, channels(c, spec.width), 3, 2, "none", name=f"conv{i + 1}", kernel_init=spec.init)
    # 2x2 at S >= 64 (Table 1); at S = 32 the map is already 1x1, so the last conv is 1x1
    k = min(2, s // 2 ** len(CHANNELS))
    outputs = 3 if attribute_logit else 2
    x = layers.Conv2D(outputs, k, padding="valid", kernel_initializer=init(spec.init), dtype="float32", name="logits")(x)
    out = layers.GlobalAveragePooling2D(dtype="float32", name="patch_mean")(x)
    return keras.Model(x_in, out, name="discriminator")
