"""Networks (paper Table 1), the partial dilated switch, the identity weight sources and one
training step of MAAE, at 32 px and narrow widths."""

import dataclasses

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config, tiny_spec
from maae_tf.model import lattice
from maae_tf.model.maae import LOSS_TERMS, MAAE, build_model
from maae_tf.model.networks import NEGATIVE, POSITIVE, IdentitySpec, build_identity, encoder_geometry
from maae_tf.model.networks.identity import CONV_LAYERS
from maae_tf.model.spec import ModelSpec


def pairs(b=2, s=32, seed=0):
    rng = np.random.default_rng(seed)
    x = lambda: tf.constant(rng.uniform(-1, 1, (b, s, s, 3)).astype(np.float32))
    m = lambda: tf.constant((rng.uniform(size=(b, s, s, 1)) > 0.5).astype(np.float32))
    return {"x1": x(), "x2": x(), "m1": m(), "m2": m()}


def test_shapes_follow_table_1():
    m = MAAE(tiny_spec(image_size=64, width=0.25))
    mu, logvar = m.encoder(tf.zeros((1, 64, 64, 3)))
    assert mu.shape == logvar.shape == (1, 16, 16, 128)  # S/4 x S/4 x C, C = 512 * 0.25
    assert m.decoder(mu).shape == (1, 64, 64, 3)
    assert m.discriminator(tf.zeros((3, 64, 64, 3))).shape == (3, 2)
    assert m.identity(tf.zeros((1, 64, 64, 3))).shape == (1, 8, 8, 128)  # conv4_1 after 3 pools
    # widths of the encoder stem: 64, 128, 256 scaled by 0.25
    convs = [l for l in m.encoder.layers if l.name in ("conv1", "conv2", "conv3")]
    assert [l.output.shape[-1] for l in convs] == [16, 32, 64]
    # the discriminator's last conv is 2x2 with two logits: one per attribute domain
    assert m.discriminator.get_layer("logits").kernel.shape == (2, 2, 256, 2)
    assert (NEGATIVE, POSITIVE) == (0, 1)


def test_output_range_and_float32_heads():
    m = MAAE(tiny_spec())
    y = m.generate(tf.random.uniform((2, 32, 32, 3), -1, 1), 3.0)
    assert y.dtype == tf.float32
    assert float(tf.reduce_max(tf.abs(y))) <= 1.0
    assert m.decoder.get_layer("to_rgb").dtype_policy.compute_dtype == "float32"
    assert m.discriminator.get_layer("logits").dtype_policy.compute_dtype == "float32"


def test_init_is_normal_0_02():
    keras.utils.set_random_seed(0)
    m = MAAE(tiny_spec(image_size=64, width=0.25))
    k = m.decoder.get_layer("res1_a").kernel.numpy()
    assert abs(k.mean()) < 0.002 and abs(k.std() - 0.02) < 0.002
    assert np.all(m.decoder.get_layer("res1_a").bias.numpy() == 0)


def test_lattice_is_derived_from_the_encoder():
    m = MAAE(tiny_spec(image_size=128, width=0.0625))
    expected = lattice.lattice_mask(encoder_geometry(), 128)
    np.testing.assert_array_equal(m.lattice, expected)
    assert int(m.lattice.sum()) == 121  # 11 x 11 of 32 x 32 (docs/method.md §3)
    assert m.lattice.shape[:2] == tuple(m.encoder.output[0].shape[1:3])


def test_delta_mask_switch_changes_nothing_else():
    """The ablation switch 'entire' only changes where δ is added (paper Fig. 5 (a) vs (b))."""
    keras.utils.set_random_seed(1)
    a = MAAE(tiny_spec(delta_mask="lattice"))
    keras.utils.set_random_seed(1)
    b = MAAE(tiny_spec(delta_mask="entire"))
    for va, vb in zip(a.weights, b.weights):
        np.testing.assert_array_equal(va.numpy(), vb.numpy())
    assert np.all(b.lattice == 1) and 0 < a.lattice.mean() < 1
    x = tf.random.uniform((2, 32, 32, 3), -1, 1, seed=3)
    np.testing.assert_array_equal(a.generate(x, 0.0).numpy(), b.generate(x, 0.0).numpy())
    assert not np.allclose(a.generate(x, 5.0).numpy(), b.generate(x, 5.0).numpy())
    z = tf.zeros((1, 8, 8, a.encoder.output[0].shape[-1]))
    shifted = a.shift(z, 2.0).numpy()
    np.testing.assert_array_equal(shifted[0, ..., 0], 2.0 * a.lattice[..., 0])
    assert np.all(shifted == shifted[..., :1])  # δ on all C channels


def test_shift_takes_scalar_or_per_image_delta():
    m = MAAE(tiny_spec())
    z = tf.zeros((3, 8, 8, 4))
    out = m.shift(z, tf.constant([1.0, -2.0, 0.0])).numpy()
    assert out[0].max() == 1.0 and out[1].min() == -2.0 and np.all(out[2] == 0)


@pytest.mark.parametrize("cycle", ["random", "fixed"])
def test_train_step_updates_both_networks_and_tracks_every_term(cycle):
    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(cycle_strength=cycle))
    g0 = [v.numpy().copy() for v in m.generator_variables]
    d0 = [v.numpy().copy() for v in m.discriminator.trainable_variables]
    i0 = [v.numpy().copy() for v in m.identity.weights]
    logs = tf.function(m.train_step)(pairs())
    assert set(logs) == set(LOSS_TERMS)
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(g0, m.generator_variables))
    assert any(not np.array_equal(a, v.numpy()) for a, v in zip(d0, m.discriminator.trainable_variables))
    for a, v in zip(i0, m.identity.weights):  # F_ID is frozen
        np.testing.assert_array_equal(a, v.numpy())
    assert int(m.g_optimizer.iterations.numpy()) == int(m.d_optimizer.iterations.numpy()) == 1
    # paper weights (Eq. 6): the total is the weighted sum of the tracked terms
    w = m.spec.losses
    total = (w.alpha_vae * float(logs["vae"]) + w.alpha_gan * float(logs["gan"]) + w.alpha_id * float(logs["id"])
             + w.alpha_cycle * float(logs["cycle"]) + w.alpha_mask * float(logs["mask"]))
    assert total == pytest.approx(float(logs["g_loss"]), rel=1e-5)


class _RecordingD:
    """Delegates to D and records how many images each call judges."""

    def __init__(self, d):
        self.d, self.sizes = d, []

    def __call__(self, images, training=False):
        self.sizes.append(int(images.shape[0]))
        return self.d(images, training=training)

    @property
    def trainable_variables(self):
        return self.d.trainable_variables


@pytest.mark.parametrize("edits, g_images, d_images", [("all", 4, 6), ("flipping", 2, 4)])
def test_d_judges_the_edits_adversarial_edits_names(edits, g_images, d_images):
    """docs/method.md §4: with "all", the G loss sends G(x1, ±δ0) and G(x2, ±δ0) through D and the
    D step sees x1, x2 and those four; with "flipping" only G(x1, +δ0) and G(x2, -δ0)."""
    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(adversarial_edits=edits))
    recording = _RecordingD(m.discriminator)
    object.__setattr__(m, "discriminator", recording)  # plain attribute: no Keras tracking
    logs = m.train_step(pairs(b=2))
    assert recording.sizes == [2 * g_images, 2 * d_images]
    assert np.isfinite(float(logs["g_loss"])) and 0.0 <= float(logs["d_accuracy"]) <= 1.0


def test_a_few_steps_with_fit_reduce_the_generator_loss():
    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec())
    ds = tf.data.Dataset.from_tensors(pairs()).repeat()
    hist = m.fit(ds, steps_per_epoch=15, epochs=2, verbose=0).history
    assert hist["reconstruction"][-1] < hist["reconstruction"][0]
    assert m.optimizer is None  # no unused default optimizer is created


def test_optimizers_are_the_papers_adam():
    m = build_model(tiny_spec())
    for opt in (m.g_optimizer, m.d_optimizer):
        assert isinstance(opt, keras.optimizers.Adam)
        assert float(opt.learning_rate) == pytest.approx(1e-4)
        assert (opt.beta_1, opt.beta_2) == (0.5, 0.999)
        assert opt.built


def _write_vgg_h5(path, model, seed=0):
    """A weight file in the layout of Keras' VGG16 h5 files: one group per layer holding
    `<layer>/kernel:0`-style datasets."""
    rng = np.random.default_rng(seed)
    written = {}
    with h5py.File(path, "w") as f:
        for name in CONV_LAYERS:
            k_shape, b_shape = [tuple(w.shape) for w in model.get_layer(name).weights]
            g = f.create_group(name).create_group(name)
            written[name] = (rng.normal(size=k_shape).astype(np.float32), rng.normal(size=b_shape).astype(np.float32))
            g["kernel:0"], g["bias:0"] = written[name]
    return written


def test_identity_weights_from_a_user_h5(tmp_path):
    random_net = build_identity(IdentitySpec("random"), 32, 0.0625)
    # pretrained sources use the full VGG16 widths; write a file of that shape
    path = str(tmp_path / "vggface.h5")
    from maae_tf.model.networks.identity import build_features
    written = _write_vgg_h5(path, build_features(32, 1.0))
    net = build_identity(IdentitySpec("h5", path), 32, 0.0625)
    assert not net.trainable and not net.trainable_weights
    for name, (k, b) in written.items():
        np.testing.assert_array_equal(net.get_layer(name).kernel.numpy(), k)
        np.testing.assert_array_equal(net.get_layer(name).bias.numpy(), b)
    assert net.output.shape[-1] == 512 and random_net.output.shape[-1] == 32


def test_identity_h5_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        build_identity(IdentitySpec("h5", str(tmp_path / "missing.h5")), 32, 0.0625)
    with h5py.File(tmp_path / "partial.h5", "w") as f:
        f.create_group("block1_conv1")
    with pytest.raises(ValueError, match="block1_conv1"):
        build_identity(IdentitySpec("h5", str(tmp_path / "partial.h5")), 32, 0.0625)


def test_random_identity_warns(caplog):
    from absl import logging as absl_logging
    import logging
    caplog.set_level(logging.WARNING)
    absl_logging.get_absl_logger().propagate = True
    build_identity(IdentitySpec("random"), 32, 0.0625)
    assert "RANDOM WEIGHTS" in caplog.text


def test_other_class_terms_add_exactly_their_loss():
    """loss.d_other_class: D's loss grows by the BCE of real negatives at the POSITIVE head and real
    positives at the NEGATIVE head, both against "fake"; nothing else changes."""
    from maae_tf.model import losses

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec())
    b = pairs(b=2)
    edits = [b["x1"] * 0.5], [b["x2"] * 0.5]
    plain, _ = m.discriminator_terms(b["x1"], b["x2"], *edits)
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, d_other_class=0.5))
    with_other, _ = m.discriminator_terms(b["x1"], b["x2"], *edits)
    real_neg, real_pos = m.discriminator(b["x1"]), m.discriminator(b["x2"])
    extra = losses.discriminator_other_class_loss(real_neg[:, POSITIVE], real_pos[:, NEGATIVE])
    assert float(with_other) == pytest.approx(float(plain) + 0.5 * float(extra), rel=1e-5)


def test_r1_penalty_is_the_squared_gradient_of_each_real_face_at_its_own_head():
    """loss.d_r1: D's loss grows by γ/2 · the mean over real faces of ‖∇x D(x)‖², x1 at the NEGATIVE
    head and x2 at the POSITIVE head, each face's gradient taken alone; the penalty's gradient
    reaches D's weights; a training step tracks it as `r1`."""
    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(init="glorot"))
    b = pairs(b=2)
    edits = [b["x1"] * 0.5], [b["x2"] * 0.5]
    variables = m.discriminator.trainable_variables
    with tf.GradientTape() as plain_tape:
        plain, plain_tracked = m.discriminator_terms(b["x1"], b["x2"], *edits)
    assert "r1" not in plain_tracked
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, d_r1=3.0))
    with tf.GradientTape() as tape:
        penalised, tracked = m.discriminator_terms(b["x1"], b["x2"], *edits)
    squared = []
    for images, head in ((b["x1"], NEGATIVE), (b["x2"], POSITIVE)):
        for i in range(2):
            face = tf.Variable(images[i:i + 1])
            with tf.GradientTape() as one:
                logit = m.discriminator(face)[0, head]
            squared.append(float(tf.reduce_sum(tf.square(one.gradient(logit, face)))))
    expected = 0.5 * 3.0 * np.mean(squared)
    assert expected > 0
    assert float(tracked["r1"]) == pytest.approx(expected, rel=1e-4)
    assert float(penalised) == pytest.approx(float(plain) + expected, rel=1e-5)
    penalty_gradient = [a - c for a, c in zip(tape.gradient(penalised, variables),
                                              plain_tape.gradient(plain, variables))]
    assert max(float(tf.reduce_max(tf.abs(g))) for g in penalty_gradient) > 0
    assert np.isfinite(float(build_model(m.spec).train_step(b)["r1"]))


def test_reconstruction_terms_of_d_reject_g_x_0_at_its_own_class_head():
    """loss.d_reconstruction: D's loss grows by the BCE of G(x1, 0) at the NEGATIVE head and G(x2, 0)
    at the POSITIVE head against "fake", times the weight; a training step passes the reconstructions
    G made to D; the setting is refused without G's side (loss.alpha_gan_reconstruction)."""
    from maae_tf.model import losses
    from maae_tf.training.settings import check

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec())
    b = pairs(b=2)
    edits = [b["x1"] * 0.5], [b["x2"] * 0.5]
    reconstructed = b["x1"] * 0.9, b["x2"] * 0.9
    plain, _ = m.discriminator_terms(b["x1"], b["x2"], *edits, reconstructed)
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, d_reconstruction=0.5))
    with_reconstructions, _ = m.discriminator_terms(b["x1"], b["x2"], *edits, reconstructed)
    extra = losses.discriminator_reconstruction_loss(m.discriminator(reconstructed[0])[:, NEGATIVE],
                                                     m.discriminator(reconstructed[1])[:, POSITIVE])
    assert float(extra) > 0
    assert float(with_reconstructions) == pytest.approx(float(plain) + 0.5 * float(extra), rel=1e-5)
    _, judged_next = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    assert [r.shape for r in judged_next[2]] == [b["x1"].shape, b["x2"].shape]
    assert np.isfinite(float(m.train_step(b)["gan"]))
    with pytest.raises(ValueError, match="alpha_gan_reconstruction"):
        check(tiny_config(**{"loss.d_reconstruction": 1.0, "loss.alpha_gan_reconstruction": 0.0}))
    check(tiny_config(**{"loss.d_reconstruction": 1.0, "loss.alpha_gan_reconstruction": 1.0}))


def terms_without_and_with(weight: str, value: float, term: str):
    """G's terms on one batch of pairs before and after setting loss weight `weight` to `value`
    (the same step's draws both times), checking that `term` appears only with it: (model, batch,
    plain terms, terms, edits)."""
    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec())
    b = pairs(b=2)
    plain, _ = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    assert term not in plain
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, **{weight: value}))
    terms, edits = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    return m, b, plain, terms, edits


def test_reconstruction_gan_term_judges_g_x_0_at_its_own_class_head():
    """loss.alpha_gan_reconstruction: G's objective grows by alpha_gan · w · the non-saturating GAN
    loss of the reconstructions G(x1, 0) at the NEGATIVE head and G(x2, 0) at the POSITIVE head
    (the same sampled z as the VAE term), tracked as `gan_reconstruction`; nothing else changes."""
    from maae_tf.model import losses

    m, b, plain, terms, _ = terms_without_and_with("alpha_gan_reconstruction", 0.5, "gan_reconstruction")
    # the reconstructions as step 1-2 of generator_terms make them (same draws: same step)
    mu, logvar = m.encoder(tf.concat([b["x1"], b["x2"]], 0), training=True)
    eps = tf.concat([m.noise(1, tf.shape(mu[:2])), m.noise(2, tf.shape(mu[:2]))], 0)
    r1, r2 = tf.split(m.decoder(mu + tf.exp(0.5 * logvar) * eps, training=True), 2)
    expected = losses.generator_gan_loss(m.discriminator(r2)[:, POSITIVE], m.discriminator(r1)[:, NEGATIVE])
    assert float(terms["gan_reconstruction"]) == pytest.approx(float(expected), rel=1e-4)
    added = m.spec.losses.alpha_gan * 0.5 * float(terms["gan_reconstruction"])
    assert float(terms["g_loss"]) == pytest.approx(float(plain["g_loss"]) + added, rel=1e-5)
    for name in ("gan", "cycle", "mask", "vae"):
        assert float(terms[name]) == pytest.approx(float(plain[name]), rel=1e-5)
    tracked = build_model(m.spec).train_step(b)
    assert np.isfinite(float(tracked["gan_reconstruction"]))


def test_attribute_term_on_the_reconstructions_reads_g_x_0_as_its_own_label():
    """loss.cls_reconstruction: G's objective grows by alpha_cls · w · the BCE of D's attribute logit
    on G(x2, 0) (has it) and G(x1, 0) (lacks it), tracked as `cls_reconstruction`; refused without
    alpha_cls (no attribute logit)."""
    from maae_tf.model import losses
    from maae_tf.model.networks import ATTRIBUTE
    from maae_tf.training.settings import check

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(**{"loss.alpha_cls": 2.0}))
    b = pairs(b=2)
    plain, _ = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, cls_reconstruction=0.5))
    terms, (_, _, (r1, r2)) = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    assert "cls_reconstruction" not in plain
    expected = losses.attribute_loss(m.discriminator(r2)[:, ATTRIBUTE], m.discriminator(r1)[:, ATTRIBUTE])
    assert float(terms["cls_reconstruction"]) == pytest.approx(float(expected), rel=1e-4)
    added = 2.0 * 0.5 * float(expected)
    assert float(terms["g_loss"]) == pytest.approx(float(plain["g_loss"]) + added, rel=1e-5)
    assert float(terms["cls"]) == pytest.approx(float(plain["cls"]), rel=1e-5)
    tracked = build_model(m.spec).train_step(b)
    assert np.isfinite(float(tracked["cls_reconstruction"]))
    with pytest.raises(ValueError, match="alpha_cls"):
        check(tiny_config(**{"loss.cls_reconstruction": 1.0}))
    check(tiny_config(**{"loss.cls_reconstruction": 1.0, "loss.alpha_cls": 1.0}))


def test_keep_term_pulls_the_keeping_edits_to_their_inputs():
    """loss.alpha_keep: G's objective grows by alpha_keep · (|G(x1, -δ0) - x1| + |G(x2, +δ0) - x2|),
    the keeping edits made from the same draws as the other terms, tracked as `keep`."""
    from maae_tf.model import losses
    from maae_tf.training.settings import check

    m, b, plain, terms, (to_positive, to_negative, _) = terms_without_and_with("alpha_keep", 3.0, "keep")
    # to_negative = [G(x2, -δ0), G(x1, -δ0)], to_positive = [G(x1, +δ0), G(x2, +δ0)]
    expected = losses.keep_loss(to_negative[1], b["x1"], to_positive[1], b["x2"])
    assert float(terms["keep"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["g_loss"]) == pytest.approx(float(plain["g_loss"]) + 3.0 * float(expected), rel=1e-5)
    tracked = build_model(m.spec).train_step(b)
    assert np.isfinite(float(tracked["keep"]))
    check(tiny_config(**{"loss.alpha_keep": 3.0}))
    with pytest.raises(ValueError, match="alpha_keep"):  # no keeping edits to pull
        check(tiny_config(adversarial_edits="flipping", **{"loss.alpha_keep": 3.0}))


def test_face_term_weighs_the_reconstructions_face_alone():
    """loss.face_reconstruction: G's objective grows by w · |(G(x, 0) - x)·(1 - B)| of both
    reconstructions, tracked as `face_reconstruction`; with L_Mask's share of the same image it
    adds up to the reconstruction's L1."""
    from maae_tf.model import losses

    m, b, plain, terms, (_, _, (r1, r2)) = terms_without_and_with("face_reconstruction", 50.0, "face_reconstruction")
    face = lambda r, x, mask: np.mean(np.abs(r.numpy() - x.numpy()) * (1.0 - mask.numpy()))
    expected = face(r1, b["x1"], b["m1"]) + face(r2, b["x2"], b["m2"])
    assert expected > 0
    assert float(terms["face_reconstruction"]) == pytest.approx(expected, rel=1e-5)
    assert float(terms["g_loss"]) == pytest.approx(float(plain["g_loss"]) + 50.0 * expected, rel=1e-5)
    background = float(losses.mask_loss(r1, b["x1"], b["m1"]) + losses.mask_loss(r2, b["x2"], b["m2"]))
    assert expected + background == pytest.approx(float(terms["reconstruction"]), rel=1e-5)
    assert float(losses.face_reconstruction_loss(b["x1"] + b["m1"], b["x1"], b["m1"])) == 0.0  # background moves only
    tracked = build_model(m.spec).train_step(b)
    assert np.isfinite(float(tracked["face_reconstruction"]))


def test_attribute_logit_learns_the_attribute_from_real_faces():
    """loss.alpha_cls: D gets a third logit, tracked as `cls`, that learns from real faces which
    class they are (here dark negatives and bright positives)."""
    from maae_tf.model.networks import ATTRIBUTE

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(init="glorot", learning_rate=1e-3, **{"loss.alpha_cls": 1.0}))
    assert m.discriminator.output_shape == (None, 3)
    rng = np.random.default_rng(0)
    batch = pairs(b=2)
    batch["x1"] = tf.constant(rng.uniform(-1.0, -0.5, (2, 32, 32, 3)).astype(np.float32))
    batch["x2"] = tf.constant(rng.uniform(0.5, 1.0, (2, 32, 32, 3)).astype(np.float32))
    for _ in range(30):
        logs = m.train_step(batch)
    assert "cls" in logs and np.isfinite(float(logs["cls"]))
    attr = m.discriminator(tf.concat([batch["x1"], batch["x2"]], 0))[:, ATTRIBUTE].numpy()
    assert attr[2:].min() > attr[:2].max()


def test_training_without_an_identity_network():
    """identity.source="none" builds no F_ID and trains with L_ID = 0; it needs loss.alpha_id = 0."""
    from maae_tf.training.settings import check

    c = tiny_config(**{"identity.source": "none"})
    with pytest.raises(ValueError, match="alpha_id"):
        check(c)
    c.loss.alpha_id = 0.0
    check(c)
    m = build_model(ModelSpec.from_config(c))
    assert m.identity is None
    logs = m.train_step(pairs(b=2))
    assert float(logs["id"]) == 0.0 and np.isfinite(float(logs["g_loss"]))


def test_warmed_up_average_spans_the_recent_steps_not_the_first_weights():
    """ema_warmup: at step t the momentum is min(ema_momentum, (1 + t) / (10 + t)); the first step copies."""
    from maae_tf.model.maae import averaged_generator

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(ema_momentum=0.999, ema_warmup=True, init="glorot"))
    ds = tf.data.Dataset.from_tensors(pairs()).repeat()
    weights = []
    for _ in range(3):
        m.fit(ds, steps_per_epoch=1, epochs=1, verbose=0)
        weights.append([v.numpy() for v in m.generator_variables])
    expected = weights[0]
    for t in (1, 2):  # a plain average at 0.999 would still be 0.999·w1 + ... here
        momentum = min(0.999, (1 + t) / (10 + t))
        expected = [momentum * a + (1 - momentum) * w for a, w in zip(expected, weights[t])]
    with averaged_generator(m):
        for v, e in zip(m.generator_variables, expected):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
    from maae_tf.training.settings import check

    with pytest.raises(ValueError, match="ema_momentum"):  # no average to warm up
        check(tiny_config(ema_warmup=True))


def test_moving_average_of_g_is_what_inference_sees_and_training_goes_on_from_the_live_weights(tmp_path):
    """ema_momentum: G's optimizer keeps avg <- m·avg + (1 - m)·w after each step (D's keeps none);
    `averaged_generator` shows the average inside its block and gives the live weights back after;
    a checkpoint holds both, and load_from_workdir serves the average (average=False: the live)."""
    from conftest import write_run
    from maae_tf.model.maae import averaged_generator, checkpoint, load_from_workdir

    keras.utils.set_random_seed(0)
    m = build_model(tiny_spec(ema_momentum=0.5, init="glorot"))
    assert not m.d_optimizer.use_ema
    ds = tf.data.Dataset.from_tensors(pairs())
    m.fit(ds.repeat(), steps_per_epoch=1, epochs=1, verbose=0)  # the first step: average = weights
    after_first = [v.numpy() for v in m.generator_variables]
    m.fit(ds.repeat(), steps_per_epoch=1, epochs=1, verbose=0)
    live = [v.numpy() for v in m.generator_variables]
    expected = [0.5 * a + 0.5 * w for a, w in zip(after_first, live)]
    x = pairs()["x1"]
    with averaged_generator(m):
        for v, e in zip(m.generator_variables, expected):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-7)
        averaged_output = m.generate(x, 3.0).numpy()
    for v, w in zip(m.generator_variables, live):
        np.testing.assert_array_equal(v.numpy(), w)
    assert np.abs(averaged_output - m.generate(x, 3.0).numpy()).max() > 1e-4

    workdir, saved = write_run(tmp_path / "run", "mouth_open", ema_momentum=0.5)
    # the saved run's average: its weights plus a known offset
    averages = saved.g_optimizer._model_variables_moving_average
    for a, v in zip(averages, saved.generator_variables):
        a.assign(v + 0.25)
    tf.train.CheckpointManager(checkpoint(saved), str(workdir / "checkpoints"), max_to_keep=2).save(checkpoint_number=4)
    served, _, _ = load_from_workdir(str(workdir))
    resumed, _, _ = load_from_workdir(str(workdir), average=False)
    for a, s, r, v in zip(averages, served.generator_variables, resumed.generator_variables, saved.generator_variables):
        np.testing.assert_allclose(s.numpy(), a.numpy())
        np.testing.assert_allclose(r.numpy(), v.numpy())


def test_jaw_margin_extends_the_face_downward_only():
    """losses.jaw_margin: a pixel is face when it or one of the `rows` pixels above it is face
    (brute force over a random mask); 0 rows leaves the mask as it is."""
    from maae_tf.model import losses

    background = (np.random.default_rng(1).random((2, 9, 7, 1)) < 0.7).astype(np.float32)
    for rows in (0, 1, 3):
        expected = background.copy()
        for i in range(9):
            face_above = (background[:, max(0, i - rows):i + 1] == 0).any(axis=1)
            expected[:, i] = np.where(face_above, 0.0, 1.0)
        np.testing.assert_array_equal(losses.jaw_margin(background, rows).numpy(), expected)


def test_jaw_margin_spares_the_edits_alone():
    """loss.mask_jaw: the edits' L_Mask uses the mask with the face extended round(mask_jaw · S)
    rows down, the reconstructions' the whole mask; the same draws give a smaller mask term."""
    from maae_tf.model import losses

    m, b, plain, _, _ = terms_without_and_with("face_reconstruction", 0.0, "face_reconstruction")
    m.spec = dataclasses.replace(m.spec, losses=dataclasses.replace(m.spec.losses, mask_jaw=0.1))
    terms, (to_positive, to_negative, (r1, r2)) = m.generator_terms(b["x1"], b["x2"], b["m1"], b["m2"])
    e1, e2 = (losses.jaw_margin(b[k], 3) for k in ("m1", "m2"))  # 0.1 · 32 rows
    inputs = {"p": (b["x2"], e2), "n": (b["x1"], e1)}  # the keeping edits' inputs
    expected = (losses.mask_loss(to_positive[0], b["x1"], e1) + losses.mask_loss(to_negative[0], b["x2"], e2)
                + losses.mask_loss(r1, b["x1"], b["m1"]) + losses.mask_loss(r2, b["x2"], b["m2"])
                + sum(losses.mask_loss(k, *inputs["p"]) for k in to_positive[1:])
                + sum(losses.mask_loss(k, *inputs["n"]) for k in to_negative[1:]))
    assert float(terms["mask"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(terms["mask"]) < float(plain["mask"])
