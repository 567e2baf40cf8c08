"""`python -m maae_tf.train_identity`: the identity network F_ID trained as a face recogniser.

    python -m maae_tf.train_identity --data_dir=data/synthetic --out=weights/identity_synthetic.h5 \
        --image_size=64 --width=0.25 --steps=1500
    # then: --config.identity.source=h5 --config.identity.weights_path=weights/identity_synthetic.h5

The ID loss (paper Eq. 5) compares F_ID features of a face and of its edit, so F_ID must map the
same person to nearby features. Pretrained VGG-Face weights do that for real faces (give them as an
h5 file, `models/identity.py`); this command trains the same VGG16-11 feature extractor
(block1_conv1 … block4_conv1, the layer names the h5 loader reads) from scratch on a dataset's
`identity_CelebA.txt`: features → global average pooling → a linear softmax over the identities,
cross-entropy, Adam. Images are cropped and resized exactly as for M-AAE training (the config's
crop) and flipped at random.

One image of every identity that has at least 3 training images is held out; at the end the
command reports the held-out top-1 accuracy and how the pooled features (what the ID loss
compares) separate people: the cosine similarity of each held-out image to its own identity's
mean training feature vs to the other identities', and the nearest-mean top-1 accuracy. The weights are written atomically in the h5 layout `identity.source=h5` reads; the
width is read back from the file.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import logging



def identity_files(data_dir: str, seed: int = 0):
    """(train paths, train labels 0..K-1, held-out paths, held-out labels, K) from the train
    partition: identities with >= 2 images; one image of each identity with >= 3 held out."""
    from maae_tf.data import layout, splits

    ids = layout.read_identities(data_dir)
    if not ids:
        raise FileNotFoundError(f"{os.path.join(data_dir, layout.IDENTITY_FILE)} not found or empty: "
                                "train_identity needs identity labels")
    part = layout.read_partition(data_dir)
    by_id: dict[int, list[str]] = {}
    for name, ident in sorted(ids.items()):
        if part.get(name) == splits.SPLITS["train"]:
            by_id.setdefault(ident, []).append(name)
    by_id = {k: v for k, v in by_id.items() if len(v) >= 2}
    if len(by_id) < 2:
        raise ValueError(f"{data_dir}: fewer than 2 identities with 2+ training images; cannot train a recogniser")
    rng = np.random.default_rng(seed)
    index = {ident: i for i, ident in enumerate(sorted(by_id))}
    train, held = [], []
    for ident, names in sorted(by_id.items()):
        names = list(names)
        if len(names) >= 3:
            held.append((names.pop(int(rng.integers(len(names)))), index[ident]))
        train += [(n, index[ident]) for n in names]
    path = lambda n: os.path.join(data_dir, layout.IMAGE_DIR, n)
    return ([path(n) for n, _ in train], np.array([l for _, l in train], np.int32),
            [path(n) for n, _ in held], np.array([l for _, l in held], np.int32), len(by_id))


def image_dataset(paths, labels, config, batch: int, train: bool, seed: int):
    import tensorflow as tf

    from maae_tf.data import celeba

    ds = tf.data.Dataset.from_tensor_slices((list(paths), labels))
    if train:
        ds = ds.shuffle(len(paths), seed=seed, reshuffle_each_iteration=True).repeat()

    def load(path, label):
        image, _ = celeba.load_example(path, "", config)
        if train:
            image = tf.image.random_flip_left_right(image, seed=seed)
        return image, label

    return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)


def build_recogniser(size: int, width: float, classes: int):
    """(recogniser with a softmax head, the VGG16-11 feature extractor inside it)."""
    import keras

    from maae_tf.model.networks.identity import build_features

    features = build_features(size, width)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features.output)
    # The features see caffe-preprocessed pixels (0-255 scale) through 8 ReLU convolutions without
    # normalisation, so their scale is arbitrary: normalising them in the head (not part of F_ID)
    # keeps the softmax out of saturation (without it the loss stayed at ln(K) on the synthetic set).
    x = keras.layers.BatchNormalization(name="pool_norm")(x)
    logits = keras.layers.Dense(classes, name="identity_logits")(x)
    return keras.Model(features.input, logits, name="recogniser"), features


def save_h5(features, path: str) -> None:
    """The conv kernels and biases, one group per layer name (what identity.load_h5_weights reads),
    written atomically."""
    import h5py

    from maae_tf.model.networks.identity import CONV_LAYERS

    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with h5py.File(tmp, "w") as f:
        for name in CONV_LAYERS:
            kernel, bias = features.get_layer(name).get_weights()
            g = f.create_group(name)
            g.create_dataset("kernel", data=kernel)
            g.create_dataset("bias", data=bias)
        f.attrs["maae_tf"] = "VGG16-11 identity features trained by maae_tf.train_identity"
    os.replace(tmp, path)


def pooled_features(features, ds) -> tuple[np.ndarray, np.ndarray]:
    """L2-normalised globally pooled F_ID features and labels of every image of `ds`."""
    import tensorflow as tf

    feats, labels = [], []
    for images, y in ds:
        feats.append(tf.reduce_mean(features(images, training=False), axis=[1, 2]).numpy())
        labels.append(y.numpy())
    f = np.concatenate(feats)
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-8), np.concatenate(labels)


def separation(features, train_ds, held_ds, classes: int) -> dict:
    """How F_ID's pooled features separate people: each held-out image's cosine similarity to its
    own identity's centroid (mean feature of that identity's training images) vs to the other
    identities' centroids, and the nearest-centroid top-1 accuracy."""
    f_train, y_train = pooled_features(features, train_ds)
    f_held, y_held = pooled_features(features, held_ds)
    centroids = np.zeros((classes, f_train.shape[1]), np.float32)
    np.add.at(centroids, y_train, f_train)
    centroids /= np.maximum(np.linalg.norm(centroids, axis=-1, keepdims=True), 1e-8)
    cos = f_held @ centroids.T                                   # [held, classes]
    own = cos[np.arange(len(y_held)), y_held]
    others = (cos.sum(1) - own) / (classes - 1)
    return {"cosine_to_own_identity": float(own.mean()), "cosine_to_other_identities": float(others.mean()),
            "nearest_centroid_top1": float(np.mean(cos.argmax(1) == y_held)), "held_out_images": int(len(y_held))}


def train_identity(data_dir: str, out: str, size: int = 64, width: float = 1.0, steps: int = 2000,
                   batch: int = 32, learning_rate: float = 3e-4, seed: int = 0) -> dict:
    """Trains the recogniser, writes `out` (h5) and `out`.json (the figures); returns the figures."""
    import keras

    from maae_tf.config import base_config
    from maae_tf.files import write_text_atomic

    keras.utils.set_random_seed(seed)
    train_paths, train_labels, held_paths, held_labels, classes = identity_files(data_dir, seed)
    config = base_config()
    config.image_size = size
    model, features = build_recogniser(size, width, classes)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    logging.info("train_identity: %d identities, %d training images, %d held out, %d px, width %g, %d steps",
                 classes, len(train_paths), len(held_paths), size, width, steps)
    per_epoch = max(1, min(100, steps // 4))  # a logged loss every per_epoch steps
    history = model.fit(image_dataset(train_paths, train_labels, config, batch, True, seed),
                        epochs=max(1, steps // per_epoch), steps_per_epoch=per_epoch, verbose=0, shuffle=False,
                        callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: logging.info(
                            "step %d: loss %.4f accuracy %.3f", (e + 1) * per_epoch, logs["loss"],
                            logs["accuracy"]))])
    losses = history.history["loss"]
    figures = {"identities": classes, "train_images": len(train_paths), "steps": len(losses) * per_epoch,
               "first_loss": float(losses[0]), "last_loss": float(losses[-1]),
               "last_train_accuracy": float(history.history["accuracy"][-1]), "size": size, "width": width}
    if len(held_paths):
        held = image_dataset(held_paths, held_labels, config, batch, False, seed)
        figures["held_out_top1"] = float(model.evaluate(held, verbose=0, return_dict=True)["accuracy"])
        figures["chance_top1"] = 1.0 / classes
        train_eval = image_dataset(train_paths, train_labels, config, batch, False, seed)
        figures.update(separation(features, train_eval, held, classes))
    save_h5(features, out)
    write_text_atomic(f"{out}.json", json.dumps(figures, indent=2))
    return figures


def train_identity_command(data_dir: str, out: str, *args) -> None:
    """`python -m maae_tf.train_identity`: `train_identity(data_dir, out, *args)`, its figures
    printed; a bad input ends in one `error:` line and exit 2."""
    try:
        figures = train_identity(data_dir, out, *args)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(figures))
    print(f"wrote {out}: use --config.identity.source=h5 --config.identity.weights_path={out}")
