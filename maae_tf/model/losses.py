"""The five loss terms of M-AAE (paper Eqs. 1-6, docs/method.md §5).

Every norm is a per-element mean. Under tf.distribute each replica's hand-written mean must be
divided by the replica count before gradients are summed across replicas (keras losses do this
themselves, `tf.reduce_mean` does not): `MAAE.train_step` scales the totals by `1 / replicas`.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from maae_tf.model.networks.discriminator import ATTRIBUTE, NEGATIVE, POSITIVE


@dataclasses.dataclass(frozen=True)
class LossWeights:
    """The weights of the objectives (config.loss; docs/method.md §5, §10): Eq. 6's α1-α5, Eq. 2's
    λ1, λ2 and the optional terms (0 = the paper's objective)."""

    alpha_vae: float
    alpha_gan: float
    alpha_id: float
    alpha_cycle: float
    alpha_mask: float
    lambda_kl: float
    lambda_rec: float
    d_other_class: float             # D: the other class's real faces are fake
    alpha_cls: float                 # G: the attribute logit reads every edit as δ's sign
    cls_reconstruction: float        # G: ... and G(x, 0) as x's own label, times alpha_cls
    alpha_gan_reconstruction: float  # G: the GAN term of G(x, 0), times alpha_gan
    alpha_keep: float                # G: the keeping edits' L1 to their inputs
    d_reconstruction: float          # D: G(x, 0) is fake at the head of x's class
    face_reconstruction: float       # G: the L1 of G(x, 0) to x inside the face
    d_r1: float                      # D: γ of the R1 penalty on real faces
    mask_jaw: float                  # G: the edits' L_Mask spares this fraction of the height below the face


def l1(a, b):
    """Mean absolute difference |a - b|_1 (per element)."""
    return tf.reduce_mean(tf.abs(tf.cast(a, tf.float32) - tf.cast(b, tf.float32)))


def kl_divergence(mu, logvar):
    """KL(q(z|x) || N(0, I)) of Eq. 2, per latent element."""
    mu = tf.cast(mu, tf.float32)
    logvar = tf.cast(logvar, tf.float32)
    return -0.5 * tf.reduce_mean(1.0 + logvar - tf.square(mu) - tf.exp(logvar))


def vae_loss(kl, reconstruction, lambda_kl, lambda_rec):
    """L_VAE = λ1·KL + λ2·|G(x, 0) - x|_1 (Eq. 2 with a Laplacian p(x|z))."""
    return lambda_kl * kl + lambda_rec * reconstruction


def mask_loss(generated, x, background):
    """L_Mask = |Mask(G(x)) - Mask(x)|_1 (Eq. 1): the background mask of the INPUT x (1 =
    background) masks both images; a mask of G(x) is never used."""
    diff = tf.abs(tf.cast(generated, tf.float32) - tf.cast(x, tf.float32))
    return tf.reduce_mean(diff * tf.cast(background, tf.float32))


def jaw_margin(background, rows: int):
    """The background mask B (1 = background, [n, H, W, 1]) with its face and hair extended `rows`
    pixels downward: the band below the chin where an opening mouth drops the jaw, which L_Mask
    would otherwise forbid (the masks cut at the chin of the photo, docs/method.md §10)."""
    background = tf.cast(background, tf.float32)
    if rows <= 0:
        return background
    face = tf.pad(1.0 - background, [[0, 0], [rows, 0], [0, 0], [0, 0]])
    # a pixel is face if any of the `rows` pixels above it (or itself) is
    return 1.0 - tf.nn.max_pool2d(face, ksize=[rows + 1, 1], strides=1, padding="VALID")


def identity_loss(features_x, features_generated):
    """L_ID = |F_ID(x) - F_ID(G(x))|^2 (Eq. 5), mean squared feature distance."""
    return tf.reduce_mean(tf.square(tf.cast(features_x, tf.float32) - tf.cast(features_generated, tf.float32)))


def bce_logits(logits, target: float):
    """Binary cross-entropy on logits against a constant target (1 = real, 0 = fake)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))


def generator_gan_loss(positive_head_on_plus_edits, negative_head_on_minus_edits):
    """L_GAN of G (Eq. 3, non-saturating): every edit must pass the head of δ's sign.

    Args:
      positive_head_on_plus_edits: D's POSITIVE logits of the edits made with δ > 0.
      negative_head_on_minus_edits: D's NEGATIVE logits of the edits made with δ < 0.
    Returns:
      The sum of the two mean BCEs against "real".
    """
    return bce_logits(positive_head_on_plus_edits, 1.0) + bce_logits(negative_head_on_minus_edits, 1.0)


def discriminator_gan_loss(negative_head_on_real_negatives, positive_head_on_real_positives,
                           positive_head_on_plus_edits, negative_head_on_minus_edits):
    """L_GAN of D (Eq. 3): each head calls its own class's real faces real and the edits made
    towards its class fake.

    Args:
      negative_head_on_real_negatives, positive_head_on_real_positives: logits of real faces.
      positive_head_on_plus_edits, negative_head_on_minus_edits: logits of the detached edits.
    Returns:
      The sum of the four mean BCEs.
    """
    return (bce_logits(negative_head_on_real_negatives, 1.0) + bce_logits(positive_head_on_real_positives, 1.0)
            + bce_logits(positive_head_on_plus_edits, 0.0) + bce_logits(negative_head_on_minus_edits, 0.0))


def discriminator_other_class_loss(positive_head_on_real_negatives, negative_head_on_real_positives):
    """D's terms for the OTHER class's real faces (loss.d_other_class): a real negative is not a
    real positive, and the reverse.

    Args:
      positive_head_on_real_negatives: POSITIVE logits of real faces without the attribute.
      negative_head_on_real_positives: NEGATIVE logits of real faces with it.
    Returns:
      The sum of the two mean BCEs against "fake".
    """
    return bce_logits(positive_head_on_real_negatives, 0.0) + bce_logits(negative_head_on_real_positives, 0.0)


def discriminator_reconstruction_loss(negative_head_on_reconstructed_negatives,
                                     positive_head_on_reconstructed_positives):
    """D's terms for G's reconstructions (loss.d_reconstruction, as D sees reconstructions in
    VAE-GAN, Larsen et al. 2016): G(x1, 0) is not a real negative, G(x2, 0) not a real positive, so
    G's GAN term on them (loss.alpha_gan_reconstruction) asks for a sharper face of x's class.

    Args:
      negative_head_on_reconstructed_negatives: NEGATIVE logits of the detached G(x1, 0).
      positive_head_on_reconstructed_positives: POSITIVE logits of the detached G(x2, 0).
    Returns:
      The sum of the two mean BCEs against "fake".
    """
    return (bce_logits(negative_head_on_reconstructed_negatives, 0.0)
            + bce_logits(positive_head_on_reconstructed_positives, 0.0))


def r1_penalty(gradients, gamma):
    """The R1 penalty (Mescheder et al. 2018, "Which training methods for GANs do actually
    converge?"): γ/2 · E‖∇x D(x)‖² over real faces, which damps the circling of D and G around
    their equilibrium (loss.d_r1).

    Args:
      gradients: ∇x of each real face's logit at the head of its class, [n, H, W, 3].
      gamma: γ.
    Returns:
      The scalar γ/2 times the mean over the faces of the squared gradient norm.
    """
    g = tf.cast(gradients, tf.float32)
    return 0.5 * gamma * tf.reduce_mean(tf.reduce_sum(tf.square(g), axis=[1, 2, 3]))


def attribute_loss(logits_should_have, logits_should_lack):
    """Classification loss of D's attribute logit (loss.alpha_cls, as in AttGAN/StarGAN): D learns it
    on real faces; G's edits must read as δ's sign.

    Args:
      logits_should_have: attribute logits of images that carry the attribute (real positives for D,
        edits with δ > 0 for G).
      logits_should_lack: attribute logits of images without it.
    Returns:
      The sum of the two mean BCEs.
    """
    return bce_logits(logits_should_have, 1.0) + bce_logits(logits_should_lack, 0.0)


def keep_loss(kept_negatives, negatives, kept_positives, positives):
    """L_keep = |G(x1, -δ0) - x1|_1 + |G(x2, +δ0) - x2|_1: an edit toward the class a face already
    has leaves the face as it is (not in the paper; loss.alpha_keep, docs/method.md §10).

    Args:
      kept_negatives, negatives: the keeping edits G(x1, -δ0) of the real negatives x1, and x1.
      kept_positives, positives: G(x2, +δ0) of the real positives x2, and x2.
    Returns:
      The scalar sum of the two per-element means.
    """
    return l1(kept_negatives, negatives) + l1(kept_positives, positives)


def face_reconstruction_loss(reconstructed, x, background):
    """|(G(x, 0) - x)·(1 - B(x))|_1: the reconstruction's L1 inside the face alone.

    Args:
      reconstructed: G(x, 0).
      x: the input images.
      background: the input's background mask B (1 = background), as L_Mask's.

    Returns:
      The scalar per-element mean over the whole image (0 outside the face).
    """
    return mask_loss(reconstructed, x, 1.0 - tf.cast(background, tf.float32))


def generator_weights(w: LossWeights) -> dict:
    """{term of MAAE.generator_terms: its weight in G's objective} under the run's loss weights `w`,
    the terms weighing 0 left out: Eq. 6's α1-α5, the attribute term (loss.alpha_cls; on the
    reconstructions alpha_cls times loss.cls_reconstruction), the GAN term of the reconstructions
    (alpha_gan times loss.alpha_gan_reconstruction), the keeping edits' L1 (loss.alpha_keep) and the
    face's L1 in the reconstructions (loss.face_reconstruction)."""
    weights = {"vae": w.alpha_vae, "gan": w.alpha_gan, "id": w.alpha_id, "cycle": w.alpha_cycle,
               "mask": w.alpha_mask, "cls": w.alpha_cls, "cls_reconstruction": w.alpha_cls * w.cls_reconstruction,
               "gan_reconstruction": w.alpha_gan * w.alpha_gan_reconstruction, "keep": w.alpha_keep,
               "face_reconstruction": w.face_reconstruction}
    return {name: float(weight) for name, weight in weights.items() if weight}


def generator_objective(terms: dict, w: LossWeights) -> tf.Tensor:
    """G's objective (Eq. 6) from its unweighted terms and the run's loss weights `w`: the sum of
    each term times its weight (`generator_weights`)."""
    return tf.add_n([weight * terms[name] for name, weight in generator_weights(w).items()] + [tf.constant(0.0)])


def discriminator_objective(judged: dict, w: LossWeights) -> tf.Tensor:
    """D's loss from its logits of `judged["real_negatives"]`, `["real_positives"]`, `["to_positive"]`
    (edits with δ > 0), `["to_negative"]` (δ < 0) and (with loss.d_reconstruction)
    `["reconstructed_negatives"]`, `["reconstructed_positives"]`, with the run's loss weights `w`:
    the GAN pair (Eq. 3), the other class's real faces (loss.d_other_class), the reconstructions
    (loss.d_reconstruction) and the attribute logit learnt from real faces only (loss.alpha_cls)."""
    real_neg, real_pos = judged["real_negatives"], judged["real_positives"]
    d_loss = discriminator_gan_loss(real_neg[:, NEGATIVE], real_pos[:, POSITIVE],
                                    judged["to_positive"][:, POSITIVE], judged["to_negative"][:, NEGATIVE])
    if w.d_other_class:
        d_loss += w.d_other_class * discriminator_other_class_loss(real_neg[:, POSITIVE], real_pos[:, NEGATIVE])
    if w.d_reconstruction:
        d_loss += w.d_reconstruction * discriminator_reconstruction_loss(
            judged["reconstructed_negatives"][:, NEGATIVE], judged["reconstructed_positives"][:, POSITIVE])
    if w.alpha_cls:
        d_loss += attribute_loss(real_pos[:, ATTRIBUTE], real_neg[:, ATTRIBUTE])
    return d_loss
