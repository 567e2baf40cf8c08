"""The five loss terms of M-AAE (paper Eqs. 1-6, DESIGN.md §5).

Every norm is a per-element mean. Under tf.distribute each replica's hand-written mean must be
divided by the replica count before gradients are summed across replicas (keras losses do this
themselves, `tf.reduce_mean` does not): `MAAE.train_step` scales the totals by `1 / replicas`.
"""

from __future__ import annotations

import tensorflow as tf


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


def identity_loss(features_x, features_generated):
    """L_ID = |F_ID(x) - F_ID(G(x))|^2 (Eq. 5), mean squared feature distance."""
    return tf.reduce_mean(tf.square(tf.cast(features_x, tf.float32) - tf.cast(features_generated, tf.float32)))


def bce_logits(logits, target: float):
    """Binary cross-entropy on logits against a constant target (1 = real, 0 = fake)."""
    logits = tf.cast(logits, tf.float32)
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), target), logits))
