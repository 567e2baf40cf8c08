"""The partial dilated layer's lattice M (paper §3.2, Fig. 2): worked examples and properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from maae_tf.model.lattice import (
    ENCODER_GEOMETRY,
    ConvGeometry,
    covers,
    describe,
    lattice_mask,
    minimal_cover,
    output_size,
    receptive_field,
    receptive_support,
)

G = ConvGeometry
PROPS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])


# ---------------------------------------------------------------- helpers (independent of module)


@st.composite
def _layer(draw):
    k = draw(st.sampled_from([1, 3, 5, 7]))
    s = draw(st.integers(1, 3))
    p = draw(st.integers(0, k // 2))
    return G(k, s, p)


stacks = st.lists(_layer(), min_size=1, max_size=5)
sizes = st.integers(16, 256)


def _valid(layers, size):
    try:
        return output_size(layers, size) >= 1
    except ValueError:
        return False


def _empirical_support(layers, size):
    """support[r, i] = latent r depends on input pixel i, found by pushing impulses through the
    stack as box filters with zero padding (all-positive weights, so no cancellation)."""
    x = np.eye(size)  # row i: impulse at pixel i
    for layer in layers:
        xp = np.pad(x, ((0, 0), (layer.pad, layer.pad)))
        n_out = (xp.shape[1] - layer.kernel) // layer.stride + 1
        x = np.stack(
            [xp[:, o * layer.stride : o * layer.stride + layer.kernel].sum(1) for o in range(n_out)],
            axis=1,
        )
    return (x > 0).T  # [latent, input]


def _hit(support, indices):
    """Brute-force coverage from the empirical support matrix."""
    hit = np.zeros(support.shape[1], dtype=bool)
    for r in indices:
        hit |= support[r]
    return hit


def _intervals(support):
    """(lo, hi) per latent row, asserting each nonempty row is contiguous."""
    out = []
    for row in support:
        nz = np.flatnonzero(row)
        if len(nz) == 0:
            out.append((1, 0))
            continue
        assert row[nz[0] : nz[-1] + 1].all()
        out.append((int(nz[0]), int(nz[-1])))
    return out


def _dp_min_cover_size(layers, size):
    """Exact minimum (BFS over 'covered prefix [0, c]' states) on the empirical fields, which
    must be intervals; None if no cover exists."""
    fields = _intervals(_empirical_support(layers, size))
    best = {-1: 0}
    frontier = [-1]
    steps = 0
    while frontier:
        if max(frontier) >= size - 1:
            return steps
        steps += 1
        nxt = set()
        for c in frontier:
            for lo, hi in fields:
                if lo <= c + 1 <= hi and hi > c and hi not in best:
                    nxt.add(hi)
        for c in nxt:
            best[c] = steps
        frontier = sorted(nxt)
    return None


# ---------------------------------------------------------------- worked examples


def test_encoder_receptive_fields_worked_example():
    assert output_size(ENCODER_GEOMETRY, 128) == 32
    assert receptive_field(ENCODER_GEOMETRY, 128, 1) == (0, 10)
    assert receptive_field(ENCODER_GEOMETRY, 128, 0) == (0, 6)
    for r in range(32):
        assert receptive_field(ENCODER_GEOMETRY, 128, r) == (max(4 * r - 6, 0), min(4 * r + 6, 127))


def test_encoder_cover_128():
    idx = minimal_cover(ENCODER_GEOMETRY, 128)
    assert idx == tuple(range(1, 32, 3))
    assert len(idx) == 11
    m = lattice_mask(ENCODER_GEOMETRY, 128)
    assert m.shape == (32, 32, 1) and m.dtype == np.float32
    assert int(m.sum()) == 121
    assert describe(ENCODER_GEOMETRY, 128).startswith(
        "lattice 11x11 of 32x32 latent pixels (121/1024), indices 1,4,7,"
    )


def test_encoder_cover_64_reaches_last_pixel():
    idx = minimal_cover(ENCODER_GEOMETRY, 64)
    assert output_size(ENCODER_GEOMETRY, 64) == 16
    assert covers(ENCODER_GEOMETRY, 64, idx)
    assert len(idx) == 6 == _dp_min_cover_size(ENCODER_GEOMETRY, 64)
    assert idx == (1, 4, 7, 10, 13, 15)


@pytest.mark.parametrize("size", [32, 64, 96, 128, 160, 256])
def test_encoder_cover_is_minimal_at_project_sizes(size):
    idx = minimal_cover(ENCODER_GEOMETRY, size)
    assert covers(ENCODER_GEOMETRY, size, idx)
    assert len(idx) == _dp_min_cover_size(ENCODER_GEOMETRY, size)


def test_one_by_one_layers_do_not_change_the_field():
    head = ENCODER_GEOMETRY[:3]
    for r in range(32):
        assert receptive_field(head, 128, r) == receptive_field(ENCODER_GEOMETRY, 128, r)


def test_no_cover_raises():
    with pytest.raises(ValueError, match="no cover"):
        minimal_cover([G(1, 2, 0)], 32)
    with pytest.raises(ValueError):
        lattice_mask([G(1, 2, 0), G(3, 1, 1)], 32)  # holes in every field: only even pixels
    with pytest.raises(ValueError):
        describe([G(1, 3, 0)], 30)
    # a gap layer followed by one that fills the gaps does cover
    assert minimal_cover([G(3, 1, 1), G(1, 2, 0)], 32) == tuple(range(16))  # fields [2r-1, 2r+1]


def test_bad_inputs_raise():
    with pytest.raises(ValueError):
        output_size([G(7, 1, 0)] * 3, 16)  # shrinks below 1
    with pytest.raises(ValueError):
        receptive_field(ENCODER_GEOMETRY, 128, 32)
    with pytest.raises(ValueError):
        G(0, 1, 0)


def test_modes():
    e = lattice_mask(ENCODER_GEOMETRY, 128, mode="entire")
    assert e.shape == (32, 32, 1) and e.dtype == np.float32 and np.all(e == 1.0)
    with pytest.raises(ValueError, match="lattice.*entire"):
        lattice_mask(ENCODER_GEOMETRY, 128, mode="bogus")


# ---------------------------------------------------------------- empirical cross-check


def _check_against_impulses(layers, size):
    support = _empirical_support(layers, size)
    assert support.shape == (output_size(layers, size), size)
    holes = False
    for r, row in enumerate(support):
        np.testing.assert_array_equal(receptive_support(layers, size, r), row, err_msg=f"r={r}")
        lo, hi = receptive_field(layers, size, r)
        nz = np.flatnonzero(row)
        if len(nz) == 0:
            assert lo > hi
            continue
        assert (lo, hi) == (nz[0], nz[-1]), f"r={r}"  # the hull ...
        holes |= not row[lo : hi + 1].all()  # ... which is the field unless it has holes
    if holes:  # holes only where no cover exists (minimal_cover's docstring argues why)
        assert not support.any(0).all()
        with pytest.raises(ValueError, match="no cover"):
            minimal_cover(layers, size)
    return holes


@pytest.mark.parametrize(
    "layers,size,holes",
    [
        (ENCODER_GEOMETRY, 128, False),
        (ENCODER_GEOMETRY, 64, False),
        ([G(3, 2, 1)] * 4, 96, False),
        ([G(5, 3, 2), G(3, 1, 0), G(7, 2, 3)], 100, False),
        ([G(4, 2, 1), G(4, 2, 1)], 64, False),  # even kernels too
        ([G(1, 2, 0)], 32, False),  # gaps between single-pixel fields
        ([G(1, 2, 0), G(3, 1, 0)], 16, True),  # holes inside fields
        ([G(3, 1, 1), G(1, 2, 0), G(3, 1, 1)], 40, False),  # gap layer, holes filled
        ([G(3, 1, 5)], 16, False),  # windows wholly in padding
    ],
)
def test_receptive_field_matches_impulse_response(layers, size, holes):
    assert _check_against_impulses(layers, size) == holes


@PROPS
@given(stacks, sizes)
def test_receptive_field_matches_impulse_response_random(layers, size):
    assume(_valid(layers, size))
    _check_against_impulses(layers, size)


# ---------------------------------------------------------------- properties of the cover


@PROPS
@given(stacks, sizes)
def test_cover_covers_is_minimal_and_optimal(layers, size):
    assume(_valid(layers, size))
    h = output_size(layers, size)
    support = _empirical_support(layers, size)
    if not support.any(0).all():
        with pytest.raises(ValueError):
            minimal_cover(layers, size)
        return
    idx = minimal_cover(layers, size)
    assert list(idx) == sorted(set(idx)) and all(0 <= r < h for r in idx)
    # (a) coverage, by brute force
    assert _hit(support, idx).all()
    assert covers(layers, size, idx)
    # (b) minimality: dropping any one index breaks coverage
    for j in range(len(idx)):
        rest = idx[:j] + idx[j + 1 :]
        assert not _hit(support, rest).all()
        assert not covers(layers, size, rest)
    # (c) optimality: exact minimum by DP, and by exhaustive subsets for small latents
    assert len(idx) == _dp_min_cover_size(layers, size)
    if h <= 12:
        for k in range(1, len(idx)):
            for sub in itertools.combinations(range(h), k):
                assert not _hit(support, sub).all()
    # (d) the 2-D mask: len(cover)^2 ones, and 2-D coverage of the S x S image
    m = lattice_mask(layers, size)
    assert m.shape == (h, h, 1) and m.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0}
    assert int(m.sum()) == len(idx) ** 2
    rows, cols = np.nonzero(m[..., 0])
    assert set(rows) == set(idx) and set(cols) == set(idx)
    hit2 = np.zeros((size, size), dtype=bool)
    for r, c in zip(rows, cols):
        hit2 |= np.outer(support[r], support[c])
    assert hit2.all()


@PROPS
@given(st.lists(_layer(), min_size=1, max_size=3), st.integers(16, 64))
def test_cover_optimal_small_latents_exhaustive(layers, size):
    """Stacks with enough stride that the latent is <= 12, checked against all smaller subsets."""
    layers = [G(3, 2, 1), G(3, 2, 1)] + layers
    assume(_valid(layers, size) and output_size(layers, size) <= 12)
    h = output_size(layers, size)
    if not _empirical_support(layers, size).any(0).all():
        with pytest.raises(ValueError):
            minimal_cover(layers, size)
        return
    idx = minimal_cover(layers, size)
    for k in range(1, len(idx)):
        for sub in itertools.combinations(range(h), k):
            assert not covers(layers, size, sub)
