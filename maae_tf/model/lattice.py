"""The partial dilated layer: the minimal latent lattice M (Sun et al., CVM 2021, §3.2, Fig. 2).

M-AAE edits an image as G(x, δ) = De(En(x) + δ·M). Instead of adding the attribute offset δ to
every pixel of the latent feature map, the paper adds it only on a sparse lattice of latent pixels
M whose receptive fields, taken together, just cover the whole input image (Fig. 2: "partial
dilated layer"). Modifying fewer latent pixels keeps the edit local and the rest of the face
intact, while the covering guarantees that every image pixel can still be changed.

Here M is computed, never typed in: it is a pure function of the encoder's layer geometry
(kernel, stride, padding of each conv) and the image size S.

* `receptive_field` gives, per axis, the input pixels a latent pixel sees, padding excluded
  (`receptive_support`: the same as an exact set).
* `minimal_cover` picks the fewest latent indices whose fields cover [0, S-1] (1-D).
* `lattice_mask` is the 2-D product of the 1-D cover: a [h, h, 1] float32 mask of 0s and 1s.

For the project's encoder (`ENCODER_GEOMETRY`), latent pixel r sees input [4r-6, 4r+6] ∩
[0, S-1]; at S = 128 (latent 32x32) the cover is r = 1, 4, 7, ..., 31, i.e. 11x11 = 121 of 1024
latent pixels.

Pure python/numpy; no TensorFlow needed.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable, Sequence

import numpy as np

MODES = ("lattice", "entire")


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """The spatial geometry of one conv layer, per axis.

    `pad` is the zero padding added before AND after the input (symmetric, as PyTorch's Conv2d
    `padding`), so the output size is (n + 2*pad - kernel) // stride + 1.
    """

    kernel: int
    stride: int
    pad: int

    def __post_init__(self):
        if self.kernel < 1 or self.stride < 1 or self.pad < 0:
            raise ValueError(f"invalid conv geometry {self}: need kernel>=1, stride>=1, pad>=0")

    def out_size(self, n: int) -> int:
        return (n + 2 * self.pad - self.kernel) // self.stride + 1


# The project's encoder (paper Table 1): a 7x7 stride-1 conv, two 3x3 stride-2 downsamplings,
# then 3 residual blocks of two 1x1 convs each and a 1x1 VAE head (7 layers that do not change
# the receptive field).
ENCODER_GEOMETRY: tuple[ConvGeometry, ...] = (
    ConvGeometry(7, 1, 3),
    ConvGeometry(3, 2, 1),
    ConvGeometry(3, 2, 1),
) + (ConvGeometry(1, 1, 0),) * 7


def _sizes(layers: Sequence[ConvGeometry], size: int) -> list[int]:
    """Spatial sizes [n_0 = size, n_1, ..., n_L] along one axis; ValueError if any is < 1."""
    if size < 1:
        raise ValueError(f"image size must be >= 1, got {size}")
    sizes = [int(size)]
    for i, layer in enumerate(layers):
        n = layer.out_size(sizes[-1])
        if n < 1:
            raise ValueError(
                f"layer {i} ({layer}) maps size {sizes[-1]} to {n}: the stack is too deep for "
                f"input size {size}"
            )
        sizes.append(n)
    return sizes


def output_size(layers: Sequence[ConvGeometry], size: int) -> int:
    """The latent size along one axis for input size `size` (ValueError if it falls below 1)."""
    return _sizes(layers, size)[-1]


def receptive_support(layers: Sequence[ConvGeometry], size: int, r: int) -> np.ndarray:
    """The exact set of input pixels latent index r sees along one axis, as a bool [size] array.

    Same backward walk as `receptive_field` but on sets of positions rather than intervals, so it
    stays exact when a layer's stride exceeds its kernel and its windows leave holes.
    """
    sizes = _sizes(layers, size)
    if not 0 <= r < sizes[-1]:
        raise ValueError(f"latent index {r} out of range [0, {sizes[-1] - 1}]")
    live = np.zeros(sizes[-1], dtype=bool)
    live[r] = True
    for layer, n_in in zip(reversed(layers), reversed(sizes[:-1])):
        prev = np.zeros(n_in, dtype=bool)
        for o in np.flatnonzero(live):
            start = int(o) * layer.stride - layer.pad
            prev[max(start, 0) : max(start + layer.kernel, 0)] = True  # slicing clips at n_in
        live = prev
    return live


def receptive_field(layers: Sequence[ConvGeometry], size: int, r: int) -> tuple[int, int]:
    """The inclusive input-pixel interval (lo, hi) that latent index r sees along one axis.

    Walks the layers backwards: output indices [a, b] of a layer read its input positions
    [a*stride - pad, b*stride - pad + kernel - 1], which are clipped to that layer's valid input
    range [0, n_in - 1] so zero-padded positions are excluded (paper §3.2: only real image pixels
    count towards the cover). If a window lies entirely in the padding the field is empty and is
    returned as an interval with lo > hi.

    The interval is exact whenever a cover exists (see `minimal_cover`). A layer whose stride
    exceeds its kernel can leave holes inside a field; the interval is then the field's hull
    (`receptive_support` gives the exact set), and no cover exists.
    """
    sizes = _sizes(layers, size)
    if not 0 <= r < sizes[-1]:
        raise ValueError(f"latent index {r} out of range [0, {sizes[-1] - 1}]")
    lo, hi = int(r), int(r)
    for layer, n_in in zip(reversed(layers), reversed(sizes[:-1])):
        lo = max(lo * layer.stride - layer.pad, 0)
        hi = min(hi * layer.stride - layer.pad + layer.kernel - 1, n_in - 1)
        if lo > hi:
            return (1, 0)  # empty: the window saw only padding
    return (lo, hi)


def minimal_cover(layers: Sequence[ConvGeometry], size: int) -> tuple[int, ...]:
    """The fewest latent indices whose receptive fields together cover input pixels [0, size-1]
    (paper §3.2, Fig. 2: the latent pixels the partial dilated layer modifies, per axis).

    Existence is checked on the exact fields (`receptive_support`): ValueError if some pixel is
    seen by no latent index at all (e.g. a 1x1 stride-2 conv skips every other pixel).

    When a cover exists every field is an interval, equal to `receptive_field`: by induction over
    the layers, the fields of one layer's positions are intervals whose ends are nondecreasing in
    the position, so two consecutive ones that neither overlap nor touch would leave the pixels
    between them unseen by every position of that layer, hence by every latent pixel; so a field
    of the next layer, a union of consecutive fields, is again an interval.

    On intervals the greedy cover is used: while some pixel is uncovered, let p be the first
    uncovered pixel and pick, among the latent indices whose field starts at or before p (and
    contains it), the one reaching farthest (the smallest index on ties). It is optimal in
    cardinality ("greedy stays ahead"): after k picks greedy covers a prefix [0, g_k]; any other
    cover's k intervals, sorted by start, cover at most a prefix [0, o_k] with o_k <= g_k, by
    induction: its (k+1)-th interval must start at or before o_k + 1 <= g_k + 1, so it was a
    candidate for greedy's (k+1)-th pick, which reaches at least as far. So no cover is smaller.

    Returns the indices in increasing order.
    """
    h = output_size(layers, size)
    seen = np.zeros(size, dtype=bool)
    for r in range(h):
        seen |= receptive_support(layers, size, r)
    if not seen.all():
        raise ValueError(
            f"no cover exists: input pixel {int(np.flatnonzero(~seen)[0])} of {size} lies in no "
            f"latent receptive field for layers {list(layers)}"
        )
    fields = [receptive_field(layers, size, r) for r in range(h)]
    chosen: list[int] = []
    covered = -1  # [0, covered] is covered
    while covered < size - 1:
        p = covered + 1
        best, best_hi = None, covered
        for r, (lo, hi) in enumerate(fields):
            if lo <= p <= hi and hi > best_hi:
                best, best_hi = r, hi
        if best is None:  # unreachable: the fields are exact intervals whose union is everything
            raise AssertionError(f"greedy cover stalled at pixel {p}")
        chosen.append(best)
        covered = best_hi
    return tuple(sorted(chosen))


def covers(layers: Sequence[ConvGeometry], size: int, indices: Iterable[int]) -> bool:
    """Whether the (exact) receptive fields of `indices` together cover every pixel [0, size-1]."""
    hit = np.zeros(size, dtype=bool)
    for r in indices:
        hit |= receptive_support(layers, size, r)
    return bool(hit.all())


def lattice_mask(
    layers: Sequence[ConvGeometry], size: int, mode: str = "lattice"
) -> np.ndarray:
    """The mask M of G(x, δ) = De(En(x) + δ·M) (paper §3.2, Fig. 2), float32 [h, h, 1].

    mode "lattice": 1 at the 2-D product of the 1-D minimal cover (the partial dilated layer),
    0 elsewhere. mode "entire": all ones (the paper's ablation "modify entire feature map").
    """
    h = output_size(layers, size)
    if mode == "entire":
        return np.ones((h, h, 1), dtype=np.float32)
    if mode != "lattice":
        raise ValueError(f"unknown lattice mode {mode!r}; valid modes: {', '.join(MODES)}")
    idx = np.asarray(minimal_cover(layers, size), dtype=np.int64)
    mask = np.zeros((h, h, 1), dtype=np.float32)
    mask[np.ix_(idx, idx, [0])] = 1.0
    return mask


def describe(layers: Sequence[ConvGeometry], size: int) -> str:
    """A one-line summary for logs, e.g.
    "lattice 11x11 of 32x32 latent pixels (121/1024), indices 1,4,7,...,31"."""
    h = output_size(layers, size)
    idx = minimal_cover(layers, size)
    k = len(idx)
    return (
        f"lattice {k}x{k} of {h}x{h} latent pixels ({k * k}/{h * h}), "
        f"indices {','.join(map(str, idx))}"
    )
