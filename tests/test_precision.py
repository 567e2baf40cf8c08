"""config.precision: bfloat16 compute keeps float32 heads and finite losses; unsupported names
are refused with the supported ones listed."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from maae_tf import precision
from maae_tf.config import base_config, check
from maae_tf.maae import build_model


@pytest.fixture
def restore_policy():
    yield
    keras.mixed_precision.set_global_policy("float32")


def small_config():
    c = base_config()
    c.image_size, c.width, c.batch_size, c.identity.source = 32, 0.0625, 2, "random"
    return c


def test_unsupported_precision_is_refused():
    c = small_config()
    c.precision = "mixed_float16"
    with pytest.raises(ValueError, match="auto, float32, mixed_bfloat16"):
        check(c)
    with pytest.raises(ValueError, match="auto, float32, mixed_bfloat16"):
        precision.apply("float64")


def test_bfloat16_step_is_finite_and_close_to_float32(restore_policy):
    rng = np.random.default_rng(0)
    data = {k: tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)) for k in ("x1", "x2")}
    data.update({k: tf.ones((2, 32, 32, 1)) for k in ("m1", "m2")})
    results = {}
    for policy in ("float32", "mixed_bfloat16"):
        precision.apply(policy)
        keras.utils.set_random_seed(0)
        m = build_model(small_config())
        assert m.decoder.get_layer("conv").compute_dtype == ("bfloat16" if policy != "float32" else "float32")
        y = m.generate(data["x1"], 2.0)
        mu, _ = m.encoder(data["x1"])
        assert y.dtype == tf.float32 and mu.dtype == tf.float32  # output layer and VAE head stay float32
        assert all(v.dtype == "float32" for v in m.generator_variables)
        results[policy] = {k: float(v) for k, v in tf.function(m.train_step)(data).items()}
    for term, value in results["mixed_bfloat16"].items():
        assert np.isfinite(value)
        if term not in ("d_accuracy", "kl"):
            assert value == pytest.approx(results["float32"][term], rel=0.05, abs=1e-3), term


def test_auto_picks_bfloat16_only_where_the_hardware_has_it(restore_policy, monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: True)
    assert precision.apply("auto") == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    monkeypatch.setattr(precision, "cpu_has_bfloat16", lambda: False)
    assert precision.apply("auto") == "float32"
    assert precision.resolve("float32") == "float32"
