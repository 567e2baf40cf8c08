"""The crop rule, one for both readers: the NumPy window (dataset preparation) and the tf.data
window (the file reader) agree on every image size and crop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maae_tf.config import base_config
from maae_tf.data import crop

fraction = st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=200, deadline=None)
@given(h=st.integers(1, 400), w=st.integers(1, 400), top=fraction, left=fraction,
       height=st.floats(0.01, 1.0), width=st.floats(0.01, 1.0))
def test_numpy_and_tf_windows_agree(h, w, top, left, height, width):
    fractions = (top, left, height, width)
    got = crop.window_tf(np.array([h, w, 3], np.int32), fractions).numpy().tolist()
    top_px, left_px, height_px, width_px = crop.window(h, w, fractions)
    assert got == [top_px, left_px, height_px, width_px]
    assert 0 <= top_px < h and 0 <= left_px < w and top_px + height_px <= h and left_px + width_px <= w


def test_a_product_just_below_a_half_rounds_alike():
    # 0.78819444... x 144 = 113.4999...: float32 arithmetic would round it to 114, NumPy to 113
    fractions = (0.7881944435956094, 0.0, 0.1, 0.5)
    assert crop.window_tf(np.array([144, 10, 3], np.int32), fractions).numpy().tolist() == list(
        crop.window(144, 10, fractions))


def test_the_default_crop_is_celebas_170_square_at_26_3():
    c = base_config()
    assert crop.window(218, 178, crop.fractions(c)) == (26, 3, 170, 170)
    assert crop.window(109, 89, crop.fractions(c)) == (13, 2, 85, 85)  # a half-size copy, same face


def test_a_crop_outside_the_image_is_refused():
    c = base_config()
    c.crop_top = 0.5
    with pytest.raises(ValueError, match="inside the image"):
        crop.fractions(c)
