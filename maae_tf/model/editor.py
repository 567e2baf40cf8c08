"""The edit over K trained runs (one network per attribute) that export serves: G_K(… G_1(x, δ_1) …,
δ_K), the paper's multi-attribute protocol (§4.4, Table 2), as the methods of `Editor`.

Signatures (K = number of attributes; N images; S = the model's size; all method
`tensorflow/serving/predict`):

  serving_default   images uint8 [N, H, W, 3], delta float32 → images uint8 [N, H, W, 3]
                    Any H, W: resized to S×S inside (bilinear, antialiased, as in training),
                    edited, resized back to H×W. K = 1: delta is a scalar (all images) or [N]
                    (also [N, 1]); K > 1: delta is [N, K], column k for attribute k (order: the
                    `metadata` signature and assets.extra/maae_export.json). δ outside the trained
                    range is clipped to [-delta_max, delta_max]; a NaN or Inf δ, a wrong rank or a
                    batch mismatch is rejected with INVALID_ARGUMENT naming the problem.
  edit_detail       same inputs and output; returns x + resize(G(x↓, δ) - G(x↓, 0)): only the
                    change the edit makes is resampled, so the input's resolution is kept and
                    δ = 0 gives the input back exactly (the way to edit large photos).
  edit_float        images float32 [N, S, S, 3] in [-1, 1] (no resizing), delta → images float32
                    [N, S, S, 3] in [-1, 1]: the generator's own output, for research use.
  reconstruct       images uint8 [N, H, W, 3] → images uint8: G(x, 0) through every network.
  discriminate      images uint8 [N, H, W, 3] → scores float32 [N, K, 2]: sigmoid of each
                    attribute's discriminator, column 0 "a real image without the attribute",
                    column 1 "a real image with it". The paper's fidelity score (Table 2) is the
                    mean of the column matching the edit's direction over edited images.
  metadata          no inputs → attributes string [K], delta_max float32 [K], image_size int32,
                    crop float32 [4] (top, left, height, width of the training crop, relative to
                    CelebA's aligned 178×218 photo), steps int64 [K] (training step of each
                    checkpoint), and one int32 output `delta_<k>_<attribute>` per column, so the
                    column order is readable in `saved_model_cli show --all`.
"""

from __future__ import annotations

import numpy as np

SIGNATURES = ("serving_default", "edit_detail", "edit_float", "reconstruct", "discriminate", "metadata")
WARMUP_BATCHES = (1, 8)


def load_runs(workdirs):
    """The float32 MAAE models of the runs in `workdirs` (in order), their configs and steps.
    All runs must share one image size and crop, since one resize serves them all."""
    from maae_tf.model import precision
    from maae_tf.attributes import snake
    from maae_tf.model.maae import load_from_workdir

    if not workdirs:
        raise ValueError("no workdir given")
    models, configs, steps = [], [], []
    with precision.policy_scope("float32"):
        for w in workdirs:
            model, config, step = load_from_workdir(w)
            models.append(model), configs.append(config), steps.append(step)
    first = configs[0]
    for w, c in zip(workdirs[1:], configs[1:]):
        for key in ("image_size", "crop_top", "crop_left", "crop_height", "crop_width"):
            if c[key] != first[key]:
                raise ValueError(f"runs cannot be composed: {key} is {first[key]} in {workdirs[0]} "
                                 f"but {c[key]} in {w}")
    attrs = [snake(c.attr) for c in configs]
    if len(set(attrs)) != len(attrs):
        raise ValueError(f"an attribute appears twice in {attrs}")
    return models, configs, steps


class Editor:
    """The serving computation over K trained MAAE models (one per attribute). Its methods are
    the signatures' bodies (this module's docstring); `archive()` wraps them for export."""

    def __init__(self, models, configs, steps):
        import tensorflow as tf

        from maae_tf.attributes import snake

        self.models = list(models)
        self.k = len(self.models)
        self.attributes = [snake(c.attr) for c in configs]
        self.size = int(configs[0].image_size)
        self.delta_max = [float(c.delta_max) for c in configs]
        self.crop = [float(configs[0][k]) for k in ("crop_top", "crop_left", "crop_height", "crop_width")]
        self.steps = [int(s) for s in steps]
        self.tf = tf

    # ----- input checks and conversions (graph code: a bad request fails as INVALID_ARGUMENT) ---
    def _check_images(self, images):
        tf = self.tf
        # The rank and the 3 channels are in the signature; a request that breaks them fails in
        # the first op that needs them (TF's own INVALID_ARGUMENT, as on tensorflow_model_server).
        with tf.control_dependencies([
                tf.debugging.assert_positive(tf.size(images), message="images is empty (N, H or W is 0)")]):
            return tf.identity(images)

    def deltas(self, delta, n):
        """δ as [N, K] float32, clipped to each attribute's trained range; rejects NaN/Inf, wrong
        ranks and batch mismatches with a message naming the problem."""
        tf = self.tf
        delta = tf.convert_to_tensor(delta, tf.float32)
        checks = [tf.debugging.assert_all_finite(delta, "delta must be finite (got NaN or Inf)")]
        if self.k == 1:
            flat = tf.reshape(delta, [-1])
            size = tf.size(flat)
            checks += [
                tf.debugging.assert_less_equal(tf.rank(delta), 2, message="delta must be a scalar, [N] or [N, 1]"),
                tf.debugging.Assert(tf.logical_or(tf.equal(size, 1), tf.equal(size, n)),
                                    ["delta must be a scalar or hold one value per image; values, images:",
                                     size, n])]
            with tf.control_dependencies(checks):
                d = tf.cond(tf.equal(size, 1), lambda: tf.fill([n], flat[0]), lambda: flat)[:, None]
        else:
            checks.append(tf.debugging.assert_rank(
                delta, 2, message=f"delta must be [N, {self.k}] (one column per attribute: "
                                  f"{', '.join(self.attributes)})"))
            with tf.control_dependencies(checks):
                shape = tf.shape(delta)
            checks = [tf.debugging.Assert(tf.logical_and(tf.equal(shape[0], n), tf.equal(shape[1], self.k)),
                                          [f"delta must be [N, {self.k}] for N images; images, delta shape:",
                                           n, shape])]
            with tf.control_dependencies(checks):
                d = tf.identity(delta)
        d_max = tf.constant(self.delta_max, tf.float32)
        return tf.clip_by_value(d, -d_max, d_max)

    def to_model(self, images):
        """uint8 [N, H, W, 3] → float32 [N, S, S, 3] in [-1, 1], as the training data is made."""
        tf = self.tf
        x = tf.image.resize(tf.cast(images, tf.float32), [self.size, self.size], method="bilinear",
                            antialias=True)
        return tf.clip_by_value(x / 127.5 - 1.0, -1.0, 1.0)

    def to_uint8(self, x, height, width):
        tf = self.tf
        x = tf.image.resize((x + 1.0) * 127.5, [height, width], method="bilinear", antialias=True)
        return tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)

    # ----- the computations ----------------------------------------------------------------------
    def generate(self, x, d):
        """G_K(… G_1(x, d[:, 0]) …, d[:, K-1]) at the model's size; x in [-1, 1]."""
        for k, model in enumerate(self.models):
            x = model.generate(x, d[:, k])
        return x

    def residual(self, x, d):
        """Σ of each network's change G_k(x_k, δ_k) - G_k(x_k, 0), applied in sequence."""
        tf = self.tf
        y = x
        for k, model in enumerate(self.models):
            n = tf.shape(y)[0]
            both = model.generate(tf.concat([y, y], 0), tf.concat([d[:, k], tf.zeros([n])], 0))
            y = y + both[:n] - both[n:]
        return y - x

    def edit(self, images, delta):
        tf = self.tf
        images = self._check_images(images)
        shape = tf.shape(images)
        d = self.deltas(delta, shape[0])
        return {"images": self.to_uint8(self.generate(self.to_model(images), d), shape[1], shape[2])}

    def edit_detail(self, images, delta):
        tf = self.tf
        images = self._check_images(images)
        shape = tf.shape(images)
        d = self.deltas(delta, shape[0])
        change = self.residual(self.to_model(images), d) * 127.5
        change = tf.image.resize(change, [shape[1], shape[2]], method="bilinear", antialias=True)
        out = tf.cast(images, tf.float32) + change
        return {"images": tf.cast(tf.round(tf.clip_by_value(out, 0.0, 255.0)), tf.uint8)}

    def edit_float(self, images, delta):
        tf = self.tf
        with tf.control_dependencies([tf.debugging.assert_all_finite(images, "images must be finite")]):
            x = tf.clip_by_value(images, -1.0, 1.0)
        return {"images": self.generate(x, self.deltas(delta, tf.shape(images)[0]))}

    def reconstruct(self, images):
        tf = self.tf
        images = self._check_images(images)
        shape = tf.shape(images)
        d = tf.zeros([shape[0], self.k])
        return {"images": self.to_uint8(self.generate(self.to_model(images), d), shape[1], shape[2])}

    def discriminate(self, images):
        tf = self.tf
        x = self.to_model(self._check_images(images))
        # the two heads only: a run with loss.alpha_cls has a third (attribute) logit
        scores = [tf.sigmoid(tf.cast(m.discriminator(x, training=False)[:, :2], tf.float32)) for m in self.models]
        return {"scores": tf.stack(scores, axis=1)}

    def metadata(self):
        tf = self.tf
        out = {"attributes": tf.constant(self.attributes, tf.string),
               "delta_max": tf.constant(self.delta_max, tf.float32),
               "image_size": tf.constant(self.size, tf.int32),
               "crop": tf.constant(self.crop, tf.float32),
               "steps": tf.constant(self.steps, tf.int64)}
        for k, name in enumerate(self.attributes):
            out[f"delta_{k}_{name}"] = tf.constant(k, tf.int32)
        return out

    def info(self) -> dict:
        """What `assets.extra/maae_export.json` records."""
        return {"attributes": self.attributes, "delta_max": self.delta_max, "image_size": self.size,
                "crop": dict(zip(("top", "left", "height", "width"), self.crop)), "steps": self.steps,
                "signatures": list(SIGNATURES), "format": "maae_tf export 1"}

    # ----- the SavedModel --------------------------------------------------------------------------
    def archive(self):
        """A keras.export.ExportArchive tracking every network, with the signatures."""
        import keras

        tf = self.tf
        archive = keras.export.ExportArchive()
        for model in self.models:
            # encoder, decoder and discriminator: the identity network is not exported
            archive.track(model.encoder), archive.track(model.decoder), archive.track(model.discriminator)
        images = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")
        delta = tf.TensorSpec(None, tf.float32, name="delta")  # unknown rank: a scalar or [N] or [N, K]
        floats = tf.TensorSpec([None, self.size, self.size, 3], tf.float32, name="images")
        archive.add_endpoint("serving_default", self.edit, [images, delta])
        archive.add_endpoint("edit_detail", self.edit_detail, [images, delta])
        archive.add_endpoint("edit_float", self.edit_float, [floats, delta])
        archive.add_endpoint("reconstruct", self.reconstruct, [images])
        archive.add_endpoint("discriminate", self.discriminate, [images])
        archive.add_endpoint("metadata", self.metadata, [])
        return archive

    def warmup_requests(self, model_name: str = "maae"):
        """PredictionLog records TF Serving replays when it loads the model."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2

        logs = []
        rng = np.random.default_rng(0)
        for n in WARMUP_BATCHES:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = "serving_default"
            images = rng.integers(0, 256, (n, self.size, self.size, 3), dtype=np.uint8)
            delta = np.zeros((n,) if self.k == 1 else (n, self.k), np.float32)
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(images))
            request.inputs["delta"].CopyFrom(tf.make_tensor_proto(delta))
            logs.append(prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)))
        return logs
