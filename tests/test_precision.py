"""config.precision: float16 (loss-scaled) and bfloat16 compute keep float32 heads and train to
losses close to float32's from the same weights; `auto` picks per hardware; unsupported names are
refused with the supported ones listed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import tiny_config, tiny_spec
from maae_tf.model import precision
from maae_tf.training.settings import check
from maae_tf.model.maae import build_model


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def test_unsupported_precision_is_refused():
    c = tiny_config(precision="float64")
    with pytest.raises(ValueError, match="auto, float32, mixed_float16, mixed_bfloat16"):
        check(c)
    with pytest.raises(ValueError, match="auto, float32, mixed_float16, mixed_bfloat16"):
        precision.apply("float64")


STEPS = 3


def test_every_policy_trains_close_to_float32_from_the_same_weights(restore_policy):
    rng = np.random.default_rng(0)
    data = {k: tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)) for k in ("x1", "x2")}
    data.update({k: tf.ones((2, 32, 32, 1)) for k in ("m1", "m2")})
    precision.apply("float32")
    weights = build_model(tiny_spec()).get_weights()
    results = {}
    for policy in ("float32", "mixed_float16", "mixed_bfloat16"):
        precision.apply(policy)
        m = build_model(tiny_spec())
        m.set_weights(weights)
        low = {"float32": "float32", "mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}[policy]
        assert m.decoder.get_layer("conv").compute_dtype == low
        assert isinstance(m.g_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
        assert isinstance(m.d_optimizer, keras.optimizers.LossScaleOptimizer) == (policy == "mixed_float16")
        y = m.generate(data["x1"], 2.0)
        mu, _ = m.encoder(data["x1"])
        assert y.dtype == tf.float32 and mu.dtype == tf.float32  # output layer and VAE head stay float32
        assert m.discriminator(data["x1"]).dtype == tf.float32   # D's logits too
        assert all(v.dtype == "float32" for v in m.generator_variables)
        step = tf.function(m.train_step)
        calls = 0
        # the dynamic loss scale starts at 2^15 and skips (and halves on) steps whose float16
        # gradients overflow: compare after the same number of applied updates
        while int(m.g_optimizer.iterations.numpy()) < STEPS:
            logs = {k: float(v) for k, v in step(data).items()}
            calls += 1
        assert calls <= STEPS + 8
        if policy == "mixed_float16":
            assert float(m.g_optimizer.dynamic_scale.numpy()) == 2.0 ** 15 / 2 ** (calls - STEPS)
        else:
            assert calls == STEPS
        results[policy] = logs
    for policy in ("mixed_float16", "mixed_bfloat16"):
        for term, value in results[policy].items():
            assert np.isfinite(value), (policy, term)
            if term not in ("d_accuracy", "kl"):
                assert value == pytest.approx(results["float32"][term], rel=0.05, abs=1e-3), (policy, term)


@pytest.mark.parametrize("cc, policy", [((9, 0), "mixed_bfloat16"), ((8, 0), "mixed_bfloat16"),
                                        ((7, 5), "mixed_float16"), ((7, 0), "mixed_float16"),
                                        ((6, 1), "float32")])
def test_auto_on_gpus_by_compute_capability(monkeypatch, cc, policy):
    gpu = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [gpu] if kind == "GPU" else [])
    monkeypatch.setattr(tf.config.experimental, "get_device_details", lambda d: {"compute_capability": cc})
    assert precision.resolve("auto") == policy


def test_auto_picks_bfloat16_only_where_the_hardware_has_it(restore_policy, monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.apply("auto") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.apply("auto") == "float32"
    assert precision.resolve("float32") == "float32"
