"""MAAE: the Mask-Adversarial AutoEncoder (paper §3, Fig. 1) as a keras.Model.

    G(x, δ) = De(En(x) + δ·M)

where M is the partial dilated lattice (paper §3.2, `maae_tf.model.lattice`). One model edits one
attribute; δ > 0 adds it, δ < 0 removes it, δ = 0 reconstructs.

`train_step` is one alternating update (paper §3.5), a recipe of named steps: `imagine` makes
every image G needs (`Generated`: reconstructions, the edits at ±δ0, the cycle's round trips),
`judge` runs D on named groups of them, `generator_terms` turns both into the terms of Eq. 6,

    α1·L_VAE + α2·L_GAN + α3·L_ID + α4·L_Cycle + α5·L_Mask   (losses.generator_objective),

`update_generator` takes Adam's step on it, and `update_discriminator` one on the attribute-aware
discriminator (docs/method.md §4, losses.discriminator_objective): real negatives x1 and
positives x2 against the edits, detached, each judged at the head of δ's sign: G(x1, +δ0), G(x2, +δ0) at
POSITIVE and G(x2, -δ0), G(x1, -δ0) at NEGATIVE (adversarial_edits="all"; "flipping" judges only
the two edits that flip the label). Each batch is a dict of balanced pairs
{"x1": negatives, "x2": positives, "m1", "m2": their background masks (1 = background)}.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re

import keras
import tensorflow as tf

from maae_tf.config import load_workdir_config
from maae_tf.model import augment, lattice, losses
from maae_tf.model.networks import (ATTRIBUTE, NEGATIVE, POSITIVE, build_decoder, build_discriminator, build_encoder,
                                    build_identity, encoder_geometry)
from maae_tf.model.optimizers import make_optimizers
from maae_tf.model.spec import ModelSpec

LOSS_TERMS = ("g_loss", "d_loss", "vae", "kl", "reconstruction", "gan", "id", "cycle", "mask",
              "d_accuracy")
# the strength of the cycle's first edit: "random" d ~ U(0, δ0], "fixed" the ±δ0 edits (`imagine`)
CYCLE_STRENGTHS = ("random", "fixed")
# the edits D judges: "all" of ±δ0 on both classes, or only the "flipping" ones (module doc)
ADVERSARIAL_EDITS = ("all", "flipping")


class MAAE(keras.Model):
    """The M-AAE generator (encoder + decoder), discriminator and frozen identity network."""

    def __init__(self, spec: ModelSpec, identity: keras.Model | None = None, **kwargs):
        super().__init__(name="maae", **kwargs)
        self.spec = spec
        networks, weights = spec.networks, spec.losses
        self.encoder = build_encoder(networks)
        self.decoder = build_decoder(networks)
        self.discriminator = build_discriminator(networks, attribute_logit=bool(weights.alpha_cls))
        # F_ID is optional for inference-only use (export, evaluation): pass identity=False.
        if identity is None and spec.identity.source != "none":
            identity = build_identity(spec.identity, networks.image_size, networks.width)
        self.identity = identity or None
        self.lattice = lattice.lattice_mask(encoder_geometry(), networks.image_size, spec.delta_mask)
        # the paper's terms, and each optional term the run weighs
        terms = (LOSS_TERMS + tuple(name for name in losses.generator_weights(weights) if name not in LOSS_TERMS)
                 + (("r1",) if weights.d_r1 else ()))
        self.trackers = {name: keras.metrics.Mean(name=name) for name in terms}

    # ----- the generator -----------------------------------------------------------------------
    def shift(self, z, delta):
        """z + δ·M on all C channels at the lattice positions; δ a scalar or one per image."""
        delta = tf.reshape(tf.cast(delta, z.dtype), [-1, 1, 1, 1])
        return z + delta * tf.constant(self.lattice[None], dtype=z.dtype)

    def generate(self, images, delta, training=False):
        """G(x, δ) at inference: z = μ (no sampling)."""
        mu, _ = self.encoder(images, training=training)
        return self.decoder(self.shift(mu, delta), training=training)

    def call(self, inputs, training=False):
        images = inputs["x1"] if isinstance(inputs, dict) else inputs
        return self.generate(images, 0.0, training=training)

    @property
    def generator_variables(self):
        return self.encoder.trainable_variables + self.decoder.trainable_variables

    # ----- training ------------------------------------------------------------------------------
    def noise(self, kind: int, shape, uniform: bool = False):
        """This replica's share of one global random draw: N(0, 1) (or U[0, 1)) of shape
        [B·replicas, ...], seeded by (spec.seed, kind, training step) and sliced at this replica's
        examples. The step is therefore random in the same way on 1 device or N replicas with the
        same global batch, and a resumed run draws exactly what an uninterrupted one would."""
        ctx = tf.distribute.get_replica_context()
        replicas, rid = ctx.num_replicas_in_sync, ctx.replica_id_in_sync_group
        b = shape[0]
        seed = tf.stack([tf.constant(self.spec.seed * 7919 + kind, tf.int64),
                         tf.cast(self.g_optimizer.iterations, tf.int64)])
        full_shape = tf.concat([[b * replicas], shape[1:]], 0)
        draw = (tf.random.stateless_uniform if uniform else tf.random.stateless_normal)(full_shape, seed)
        return draw[rid * b:(rid + 1) * b]

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        # optimizer=None: no unused default optimizer is created (and checkpointed).
        super().compile(optimizer=None, **kwargs)
        self.g_optimizer = g_optimizer
        self.d_optimizer = d_optimizer
        # Built eagerly: lazily built optimizers fail under MirroredStrategy (docs/stack.md).
        self.g_optimizer.build(self.generator_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.built = True

    @property
    def metrics(self):
        return list(self.trackers.values())

    def batched(self, network, named: dict, training: bool | None = True) -> dict:
        """`network` on the named batches in ONE call (they are concatenated along the batch), its
        output (each output, for a network with several) split back by name. training=None calls
        the network without the argument (the frozen F_ID)."""
        sizes = tf.stack([tf.shape(v)[0] for v in named.values()])
        kwargs = {} if training is None else {"training": training}
        out = network(tf.concat(list(named.values()), 0), **kwargs)
        if isinstance(out, (tuple, list)):
            return dict(zip(named, zip(*(tf.split(o, sizes) for o in out))))
        return dict(zip(named, tf.split(out, sizes)))

    def sample_latent(self, mu, logvar, kind: int):
        """z = μ + σ·ε (Eq. 2), ε this step's draw number `kind` (`noise`)."""
        return mu + tf.exp(0.5 * logvar) * tf.cast(self.noise(kind, tf.shape(mu)), mu.dtype)

    def imagine(self, x1, x2) -> Generated:
        """Every image G makes in one training step from negatives x1 and positives x2 (Generated):
        the VAE's reconstructions, the edits at ±δ0, and the cycle's round trips."""
        spec, d0 = self.spec, self.spec.delta_max
        # 1. En(x) and the VAE's reparameterisation, one draw for x1 and one for x2
        mu, logvar = self.encoder(tf.concat([x1, x2], 0), training=True)
        (mu1, mu2), (logvar1, logvar2) = tf.split(mu, 2), tf.split(logvar, 2)
        z1, z2 = self.sample_latent(mu1, logvar1, kind=1), self.sample_latent(mu2, logvar2, kind=2)
        # 2. one decoder call for the reconstructions G(x, 0), the flipping edits G(x1, +δ0),
        #    G(x2, -δ0), the keeping edits G(x1, -δ0), G(x2, +δ0) (adversarial_edits="all": without
        #    them a generator that inverts whatever δ is passes every loss, docs/method.md §4) and
        #    the cycle's first edits at d ~ U(0, δ0] (cycle_strength="random", paper §3.2)
        latents = {"r1": z1, "r2": z2, "p1": self.shift(z1, d0), "n2": self.shift(z2, -d0)}
        if spec.adversarial_edits == "all":
            latents.update(n1=self.shift(z1, -d0), p2=self.shift(z2, d0))
        if spec.cycle_strength == "random":
            d = d0 * (1.0 - self.noise(3, tf.reshape(tf.shape(x1)[0], [1]), uniform=True))
            latents.update(q1=self.shift(z1, d), q2=self.shift(z2, -d))
        else:
            d = d0
        out = self.batched(self.decoder, latents)
        # 3. the way back of the cycle (Eq. 4), from the mean of each first edit
        q1, q2 = out.get("q1", out["p1"]), out.get("q2", out["n2"])
        back = self.batched(self.encoder, {"q1": q1, "q2": q2})
        cycled = self.batched(self.decoder, {"c1": self.shift(back["q1"][0], -d), "c2": self.shift(back["q2"][0], d)})
        return Generated(mu=mu, logvar=logvar, reconstructed=(out["r1"], out["r2"]),
                         flipped=(out["p1"], out["n2"]),
                         kept=(out["n1"], out["p2"]) if "n1" in out else (),
                         cycled=(cycled["c1"], cycled["c2"]))

    def judge(self, step: str, **groups) -> dict:
        """D's logits [n, heads] for each named group of image batches, in one call; in G's or D's
        `step` ("generator", "discriminator"), each drawing its own augmentation where
        loss.d_augment asks for one."""
        network, policy = self.discriminator, self.spec.d_augment
        if policy:
            kind = {"generator": 100, "discriminator": 110}[step]
            draw = lambda part, n: self.noise(kind + part, tf.reshape(n, [1]), uniform=True)
            network = lambda images, training: self.discriminator(augment.augment(images, policy, draw),
                                                                  training=training)
        return self.batched(network, {name: tf.concat(images, 0) for name, images in groups.items()})

    def generator_terms(self, x1, x2, m1, m2):
        """Every term of G's objective (Eq. 6) for one batch of pairs, unweighted, with g_loss their
        weighted sum; and what D judges next, (to_positive, to_negative, the reconstructions). Called inside the
        gradient tape of `update_generator` (and by `maae_tf.evaluation.diagnose`, which weighs each
        term's gradient)."""
        w = self.spec.losses
        g = self.imagine(x1, x2)
        (r1, r2), (p1, n2), (c1, c2) = g.reconstructed, g.flipped, g.cycled
        # D on every edit, each at the head of δ's sign, and on the reconstructions, each at the
        # head of its own class (only with loss.alpha_gan_reconstruction or cls_reconstruction > 0:
        # docs/method.md §10)
        judge_reconstructions = w.alpha_gan_reconstruction or w.cls_reconstruction
        judged = self.judge("generator", to_positive=g.to_positive, to_negative=g.to_negative,
                            **({"r1": [r1], "r2": [r2]} if judge_reconstructions else {}))
        if self.identity is not None:
            features = self.batched(self.identity, {"x1": x1, "x2": x2, "p1": p1, "n2": n2}, training=None)
        t = {"kl": losses.kl_divergence(g.mu, g.logvar),
             "reconstruction": losses.l1(r1, x1) + losses.l1(r2, x2)}
        t["vae"] = losses.vae_loss(t["kl"], t["reconstruction"], w.lambda_kl, w.lambda_rec)           # Eq. 2
        t["gan"] = losses.generator_gan_loss(judged["to_positive"][:, POSITIVE],                      # Eq. 3
                                             judged["to_negative"][:, NEGATIVE])
        if self.identity is not None:                                                                 # Eq. 5
            t["id"] = (losses.identity_loss(features["x1"], features["p1"])
                       + losses.identity_loss(features["x2"], features["n2"]))
        else:  # identity.source="none": no F_ID (docs/method.md §10)
            t["id"] = tf.constant(0.0)
        t["cycle"] = losses.l1(c1, x1) + losses.l1(c2, x2)                                            # Eq. 4
        jaw = round(w.mask_jaw * int(x1.shape[1]))  # the edits may drop the jaw below the mask's chin
        t["mask"] = sum(losses.mask_loss(image, x, m)                                                 # Eq. 1
                        for image, x, m in g.with_their_inputs((x1, m1, losses.jaw_margin(m1, jaw)),
                                                                (x2, m2, losses.jaw_margin(m2, jaw))))
        if w.alpha_cls:  # D's attribute logit must read every edit as δ's sign (docs/method.md §10)
            t["cls"] = losses.attribute_loss(judged["to_positive"][:, ATTRIBUTE], judged["to_negative"][:, ATTRIBUTE])
        if w.cls_reconstruction:  # ... and G(x, 0) as x's own label
            t["cls_reconstruction"] = losses.attribute_loss(judged["r2"][:, ATTRIBUTE], judged["r1"][:, ATTRIBUTE])
        if w.alpha_gan_reconstruction:
            t["gan_reconstruction"] = losses.generator_gan_loss(judged["r2"][:, POSITIVE], judged["r1"][:, NEGATIVE])
        if w.alpha_keep:  # the keeping edits stay the photo (docs/method.md §10)
            (n1, p2) = g.kept
            t["keep"] = losses.keep_loss(n1, x1, p2, x2)
        if w.face_reconstruction:  # the face of G(x, 0) weighs as its background (docs/method.md §10)
            t["face_reconstruction"] = (losses.face_reconstruction_loss(r1, x1, m1)
                                        + losses.face_reconstruction_loss(r2, x2, m2))
        t["g_loss"] = losses.generator_objective(t, w)                                                # Eq. 6
        return t, (g.to_positive, g.to_negative, g.reconstructed)

    def discriminator_terms(self, x1, x2, to_positive, to_negative, reconstructed=()):
        """D's loss on real negatives x1, real positives x2, the (detached) edits and, with
        loss.d_reconstruction, the reconstructions (G(x1, 0), G(x2, 0)), plus loss.d_r1's penalty;
        and what is tracked of it ({"d_accuracy", and "r1" with loss.d_r1})."""
        w = self.spec.losses
        groups = {}
        if w.d_reconstruction:
            groups = {"reconstructed_negatives": [reconstructed[0]], "reconstructed_positives": [reconstructed[1]]}
        # with loss.d_r1 the gradient of each real face's logit at its own head w.r.t. the face,
        # taken inside D's step so that the penalty's own gradient reaches D's weights; without
        # it no tape watches the inputs
        input_tape = tf.GradientTape(watch_accessed_variables=False) if w.d_r1 else contextlib.nullcontext()
        with input_tape:
            if w.d_r1:
                input_tape.watch([x1, x2])
            judged = self.judge("discriminator", real_negatives=[x1], real_positives=[x2], to_positive=to_positive,
                                to_negative=to_negative, **groups)
            real_neg, real_pos = judged["real_negatives"], judged["real_positives"]
            own_heads = [real_neg[:, NEGATIVE], real_pos[:, POSITIVE]]  # recorded for the penalty's gradient
        d_loss = losses.discriminator_objective(judged, w)
        tracked = {"d_accuracy": tf.reduce_mean(tf.cast(tf.concat(
            [own_heads[0] > 0, own_heads[1] > 0, judged["to_positive"][:, POSITIVE] < 0,
             judged["to_negative"][:, NEGATIVE] < 0], 0), tf.float32))}
        if w.d_r1:  # each image's logit depends on that image alone (D has no batch statistics)
            gradients = input_tape.gradient(own_heads, [x1, x2])
            tracked["r1"] = losses.r1_penalty(tf.concat(gradients, 0), w.d_r1)
            d_loss += tracked["r1"]
        return d_loss, tracked

    def update_generator(self, x1, x2, m1, m2):
        """One step of Adam on G's objective; returns its terms and what D is to judge (generator_terms)."""
        with tf.GradientTape() as tape:
            terms, edits = self.generator_terms(x1, x2, m1, m2)
            scaled = self.g_optimizer.scale_loss(replica_share(terms["g_loss"]))  # × the loss scale (float16)
        variables = self.generator_variables
        self.g_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return terms, edits

    def update_discriminator(self, x1, x2, to_positive, to_negative, reconstructed=()):
        """One step of Adam on D's loss, against the edits (and reconstructions) detached from G;
        returns (loss, what is tracked of it)."""
        to_positive, to_negative, reconstructed = ([tf.stop_gradient(e) for e in images]
                                                   for images in (to_positive, to_negative, reconstructed))
        with tf.GradientTape() as tape:
            d_loss, tracked = self.discriminator_terms(x1, x2, to_positive, to_negative, reconstructed)
            scaled = self.d_optimizer.scale_loss(replica_share(d_loss))
        variables = self.discriminator.trainable_variables
        self.d_optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return d_loss, tracked

    def train_step(self, data):
        """One alternating update (paper §3.5): G on Eq. 6, then D on the same edits, detached."""
        x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        terms, judged_next = self.update_generator(x["x1"], x["x2"], x["m1"], x["m2"])
        d_loss, d_tracked = self.update_discriminator(x["x1"], x["x2"], *judged_next)
        values = dict(terms, d_loss=d_loss, **d_tracked)
        for name, tracker in self.trackers.items():
            tracker.update_state(values[name])
        return {name: t.result() for name, t in self.trackers.items()}


def replica_share(loss):
    """This replica's share of a global mean under tf.distribute (losses.py): loss / replicas."""
    return loss * (1.0 / tf.distribute.get_strategy().num_replicas_in_sync)


@dataclasses.dataclass(frozen=True)
class Generated:
    """The images G makes in one training step from negatives x1 and positives x2 (`MAAE.imagine`)."""

    mu: tf.Tensor            # En's means of [x1; x2]
    logvar: tf.Tensor        # and log variances
    reconstructed: tuple     # G(x1, 0), G(x2, 0)
    flipped: tuple           # G(x1, +δ0), G(x2, -δ0): the edits that flip the label
    kept: tuple              # G(x1, -δ0), G(x2, +δ0) with adversarial_edits="all", else ()
    cycled: tuple            # G(G(x1, +d), -d), G(G(x2, -d), +d)

    @property
    def to_positive(self) -> list:
        """The edits made with δ > 0, judged at D's POSITIVE head: G(x1, +δ0) [, G(x2, +δ0)]."""
        return [self.flipped[0]] + list(self.kept[1:])

    @property
    def to_negative(self) -> list:
        """The edits made with δ < 0, judged at D's NEGATIVE head: G(x2, -δ0) [, G(x1, -δ0)]."""
        return [self.flipped[1]] + list(self.kept[:1])

    def with_their_inputs(self, first, second):
        """(image, x, background mask) for every image the mask loss compares with its input;
        `first` = (x1, m1, e1), `second` = (x2, m2, e2): the reconstructions take x's mask m, the
        edits e (m with loss.mask_jaw's margin below the face)."""
        (x1, m1, e1), (x2, m2, e2) = first, second
        (p1, n2), (r1, r2) = self.flipped, self.reconstructed
        pairs = [(p1, x1, e1), (n2, x2, e2), (r1, x1, m1), (r2, x2, m2)]
        if self.kept:
            n1, p2 = self.kept
            pairs += [(n1, x1, e1), (p2, x2, e2)]
        return pairs


def build_model(spec: ModelSpec, identity=None) -> MAAE:
    """An MAAE compiled with its two optimizers (and XLA when spec.optimizer.jit_compile), ready for
    fit() or for restoring a checkpoint. Build it inside `strategy.scope()` to distribute it."""
    model = MAAE(spec, identity=identity)
    model.compile(*make_optimizers(spec.optimizer), jit_compile=bool(spec.optimizer.jit_compile))
    return model


def checkpoint(model: MAAE) -> tf.train.Checkpoint:
    """What a checkpoint holds: the networks and both optimizers (their step counts, which also seed
    the step's random draws, `MAAE.noise`)."""
    return tf.train.Checkpoint(model=model, g_optimizer=model.g_optimizer, d_optimizer=model.d_optimizer)


def write_average(model: MAAE) -> bool:
    """Writes the moving average of G's weights (config.ema_momentum) over them; False (and
    nothing written) for a run without one."""
    if not model.spec.optimizer.ema_momentum:
        return False
    model.g_optimizer.finalize_variable_values(model.generator_variables)
    return True


@contextlib.contextmanager
def averaged_generator(model: MAAE):
    """Inside the block G's weights are their moving average (`write_average`), the live weights
    again after it (the in-training evaluation and images: they show what the run's evaluation
    and export will); without an average nothing changes."""
    variables = model.generator_variables
    live = [tf.identity(v) for v in variables]  # copies, not references
    if not write_average(model):
        yield model
        return
    try:
        yield model
    finally:
        for variable, value in zip(variables, live):
            variable.assign(value)


_CKPT_FILE = re.compile(r"^ckpt-(\d+)\.(index|data-\d+-of-\d+)$")


def saved_checkpoints(directory: str) -> list[str]:
    """The ckpt-N prefixes with files in `directory`, oldest first, whatever the state file
    (`checkpoint`) says: a copy of a run may lack it, or a kill may land between save and update."""
    steps = set()
    if os.path.isdir(directory):
        steps = {int(m.group(1)) for m in map(_CKPT_FILE.match, os.listdir(directory)) if m}
    return [os.path.join(directory, f"ckpt-{n}") for n in sorted(steps)]


def checkpoint_files(prefix: str) -> list[str]:
    """The files of the checkpoint `prefix` (its .index and .data-* shards)."""
    directory, name = os.path.split(prefix)
    return sorted(os.path.join(directory, f) for f in os.listdir(directory)
                  if (m := _CKPT_FILE.match(f)) and f"ckpt-{m.group(1)}" == name)


def _damage(prefix: str, error: Exception) -> str:
    """Which file of `prefix` is damaged and how, in a few words."""
    name = os.path.basename(prefix)
    message = re.sub(r"\{\{.*?\}\}\s*", "", (str(error).strip().splitlines() or [type(error).__name__])[-1])
    if not os.path.isfile(prefix + ".index"):
        return f"{name}.index is missing"
    if "sstable" in message:
        return f"{name}.index: {message}"
    data = [os.path.basename(f) for f in checkpoint_files(prefix) if not f.endswith(".index")]
    if "No such file" in message or not data:
        return f"{name}: a data file is missing"
    return f"{', '.join(data)}: {message[:120]}"


def restore_newest(model: MAAE, directory: str, partial: bool = False) -> tuple[str | None, list[tuple[str, str]]]:
    """Restores into `model` the newest checkpoint of `directory` that reads back whole (train
    resumes from it; the loader refuses to skip one). Returns its prefix (None when none restores)
    and (prefix, what is damaged) for each newer one. `partial`: variables the model lacks (the
    identity network of an inference model) may stay unread. A checkpoint that reads back but does
    not fit the model is a ValueError: older ones would not fit either."""
    damaged = []
    for prefix in reversed(saved_checkpoints(directory)):
        try:
            status = checkpoint(model).restore(prefix)
            if partial:
                status.expect_partial()
            status.assert_existing_objects_matched()
        except (IndexError, tf.errors.OpError) as e:  # a truncated, missing or corrupt file
            damaged.append((prefix, _damage(prefix, e)))
            continue
        except (ValueError, AssertionError) as e:
            detail = (str(e).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"checkpoint {prefix} does not fit the model of this config ({detail})") from None
        return prefix, damaged
    return None, damaged


def describe_damaged(damaged: list[tuple[str, str]]) -> str:
    """'checkpoint DIR/ckpt-10 is damaged (...)' for one, '2 checkpoints are damaged: ...' for more."""
    if len(damaged) == 1:
        return f"checkpoint {damaged[0][0]} is damaged ({damaged[0][1]})"
    return f"{len(damaged)} checkpoints are damaged: " + "; ".join(f"{p} ({what})" for p, what in damaged)


def load_from_workdir(workdir: str, with_identity: bool = False, average: bool = True):
    """The model of a training run, built from its saved config.json and restored from its latest
    checkpoint (evaluation, export), with G's weights their moving average where the run kept one
    (config.ema_momentum; average=False: the live weights training goes on from). Returns
    (model, config, step). Raises FileNotFoundError when
    the workdir has no checkpoint, ValueError naming the files when the latest one is damaged (an
    older one is never used silently)."""
    config = load_workdir_config(workdir)
    model = build_model(ModelSpec.from_config(config), identity=None if with_identity else False)
    directory = os.path.join(workdir, "checkpoints")
    # the identity network's weights are not needed for inference
    restored, damaged = restore_newest(model, directory, partial=True)
    if damaged:
        saved = saved_checkpoints(directory)
        older = [os.path.basename(p) for p in reversed(saved[:len(saved) - len(damaged)])]
        raise ValueError(f"{describe_damaged(damaged)}; " + (
            f"older checkpoints there: {', '.join(older)} (delete the damaged files to use "
            f"{os.path.basename(restored)}, or copy the run again)" if restored
            else "no older checkpoint restores: copy the run again or train it anew"))
    if restored is None:
        raise FileNotFoundError(f"no checkpoint in {directory}: train first")
    if average:
        write_average(model)
    return model, config, int(model.g_optimizer.iterations.numpy())
