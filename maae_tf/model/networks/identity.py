"""Frozen identity network F_ID (paper §3.4, Eq. 5): the first 11 layers of VGG16,
conv1_1 ... conv4_1 with the three max pools, named as Keras' VGG16 names them
(block1_conv1, block1_conv2, block1_pool, ..., block3_pool, block4_conv1).

Weight sources (config.identity.source), docs/method.md §2:
  "h5"       a Keras/h5 weight file the user gives (config.identity.weights_path), e.g. VGG-Face
             converted to Keras, or one written by `python -m maae_tf.train_identity`. Expected: one group per conv layer named as above, each holding a
             4-D kernel [3, 3, in, out] and a 1-D bias (Keras' own VGG16 files and files saved by
             `save_weights` of this network both fit). A missing file or layer is an error.
  "imagenet" Keras' ImageNet VGG16 weights (downloaded once by Keras, cached in ~/.keras).
  "random"   random frozen weights: only for tests and offline quickstarts, always with a warning.
"imagenet" has VGG16's widths; "random" scales with config.width; "h5" takes the width of the
file (block1_conv1's filters / 64), so narrow networks from `python -m maae_tf.train_identity`
load too.
Input: images in [-1, 1]; VGG's caffe preprocessing (BGR, mean subtraction) happens inside.
"""

from __future__ import annotations

import dataclasses
import os

import h5py
import keras
import numpy as np
from absl import logging
from keras import layers

from maae_tf.model.networks.common import channels

# VGG16 up to conv4_1: (name, channels) or (name, None) for a 2x2 max pool.
VGG16_11 = (
    ("block1_conv1", 64), ("block1_conv2", 64), ("block1_pool", None),
    ("block2_conv1", 128), ("block2_conv2", 128), ("block2_pool", None),
    ("block3_conv1", 256), ("block3_conv2", 256), ("block3_conv3", 256), ("block3_pool", None),
    ("block4_conv1", 512),
)
CONV_LAYERS = tuple(name for name, c in VGG16_11 if c is not None)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# where F_ID's weights come from (module doc); "none" = a run without F_ID and without L_ID
SOURCES = ("imagenet", "h5", "random", "none")


@dataclasses.dataclass(frozen=True)
class IdentitySpec:
    """Where F_ID's weights come from: `source` (one of SOURCES) and, for "h5", the file."""

    source: str
    weights_path: str = ""


def _caffe_preprocess(x):
    """[-1, 1] RGB -> VGG's input: 0-255 BGR minus the ImageNet mean."""
    x = (x + 1.0) * 127.5
    x = x[..., ::-1]
    return x - keras.ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=x.dtype)


def build_features(image_size: int, width: float) -> keras.Model:
    """The VGG16-11 feature network (conv1_1 … conv4_1) at `width`, with random weights."""
    x_in = keras.Input((image_size, image_size, 3), name="image")
    x = layers.Lambda(_caffe_preprocess, name="caffe_preprocess")(x_in)
    for name, c in VGG16_11:
        if c is None:
            x = layers.MaxPooling2D(2, name=name)(x)
        else:
            x = layers.Conv2D(channels(c, width), 3, padding="same", activation="relu", name=name)(x)
    return keras.Model(x_in, x, name="identity")


def _find_kernel_bias(f: h5py.File, layer: str):
    """Finds the (kernel, bias) arrays of `layer` anywhere in an h5 file: the deepest group whose
    path contains the layer name and that holds one 4-D and one 1-D dataset."""
    found = []

    def visit(path, obj):
        if isinstance(obj, h5py.Group) and layer in path.split("/"):
            arrays = [v for v in obj.values() if isinstance(v, h5py.Dataset)]
            k = [a for a in arrays if a.ndim == 4]
            b = [a for a in arrays if a.ndim == 1]
            if len(k) == 1 and len(b) == 1:
                found.append((np.asarray(k[0]), np.asarray(b[0])))
        return None

    f.visititems(visit)
    return found[0] if found else None


def h5_width(path: str) -> float:
    """The width factor of the weights in `path` (block1_conv1's filters / 64): 1.0 for VGG16 /
    VGG-Face files, less for narrow networks trained by `python -m maae_tf.train_identity`."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"identity weights file not found: {path!r} (config.identity.weights_path)")
    with h5py.File(path, "r") as f:
        pair = _find_kernel_bias(f, CONV_LAYERS[0])
    if pair is None:
        raise ValueError(f"{path}: no kernel/bias found for layer {CONV_LAYERS[0]!r}; expected layers "
                         f"{', '.join(CONV_LAYERS)}")
    return pair[0].shape[-1] / 64


def load_h5_weights(model: keras.Model, path: str) -> None:
    """Loads conv kernels and biases by layer name (see module doc) from `path`."""
    if not path or not os.path.exists(path):
        raise FileNotFoundError(f"identity weights file not found: {path!r} (config.identity.weights_path)")
    with h5py.File(path, "r") as f:
        for name in CONV_LAYERS:
            pair = _find_kernel_bias(f, name)
            if pair is None:
                raise ValueError(f"{path}: no kernel/bias found for layer {name!r}; expected layers "
                                 f"{', '.join(CONV_LAYERS)}")
            layer = model.get_layer(name)
            want = [tuple(w.shape) for w in layer.weights]
            got = [pair[0].shape, pair[1].shape]
            if want != [tuple(g) for g in got]:
                raise ValueError(f"{path}: layer {name!r} has shapes {got}, the network needs {want}")
            layer.set_weights(list(pair))


def build_identity(spec: IdentitySpec, image_size: int, width: float) -> keras.Model:
    """F_ID for images of `image_size`, frozen, with weights from `spec.source` ("random" at the
    networks' `width`; the other sources have the width of their weights)."""
    source, size = spec.source, image_size
    if source == "random":
        model = build_features(size, width)
        logging.warning(
            "IDENTITY NETWORK HAS RANDOM WEIGHTS (config.identity.source='random'): the ID loss "
            "compares random VGG features, not face identity. Fine for tests and the synthetic "
            "quickstart; for real faces set identity.source='h5' with VGG-Face weights or 'imagenet'.")
    elif source == "h5":
        model = build_features(size, h5_width(spec.weights_path))
        load_h5_weights(model, spec.weights_path)
    elif source == "imagenet":
        model = build_features(size, 1.0)
        vgg = keras.applications.VGG16(include_top=False, weights="imagenet", input_shape=(size, size, 3))
        for name in CONV_LAYERS:
            model.get_layer(name).set_weights(vgg.get_layer(name).get_weights())
    else:
        raise ValueError(f"identity.source must be 'h5', 'imagenet' or 'random', got {source!r}")
    model.trainable = False
    return model
