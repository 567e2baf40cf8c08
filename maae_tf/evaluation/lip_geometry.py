"""The lips' geometry: a second reading of Mouth_Slightly_Open for the judge (docs/method.md §7).

dlib's 68 landmarks are fitted on the fixed face box of the training crop (`identity.LANDMARK_BOX`,
no detector: it never fails), and `features` measures eleven distances between the lips, the nose
and the chin in units of the distance between the eyes. A class-balanced logistic regression on
them (`LogisticTerm`), fitted on the judge's training images, gives a logit that
`classifier.Judge` adds to its CNN's. It reads where the lips are, not their texture: on the dev
set at 64 px the sum lifts Mouth_Slightly_Open's balanced accuracy on held-out real images from
0.862-0.901 (the CNN alone) to 0.892-0.913 over three held-out splits; the distances alone score
0.889-0.899.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from maae_tf.data.faces import INSTALL_HINT, shape_model_path
from maae_tf.evaluation import identity

# (landmark, landmark) of dlib's 68-point scheme whose distance is measured, and its name
PAIRS = {"inner_gap_left": (61, 67), "inner_gap_middle": (62, 66), "inner_gap_right": (63, 65),
         "outer_height_left": (50, 58), "outer_height_middle": (51, 57), "outer_height_right": (52, 56),
         "outer_width": (48, 54), "inner_width": (60, 64), "nose_to_upper_lip": (33, 51),
         "lower_lip_to_chin": (57, 8)}
NAMES = (*PAIRS, "inner_gap_over_width")
LEFT_EYE, RIGHT_EYE = slice(36, 42), slice(42, 48)


@functools.lru_cache(maxsize=1)
def _predictor():
    """(dlib module, 68-point shape predictor, the face box), loaded once per process."""
    try:
        import dlib  # optional (the .[faces] extra) and slow to import: loaded on first use
    except ImportError as e:
        raise RuntimeError(f"{INSTALL_HINT} ({e})") from None
    return dlib.shape_predictor(shape_model_path(68)), identity.landmark_rect(dlib)


def landmarks(images) -> np.ndarray:
    """float32 [N, 68, 2] (x, y) landmarks, in pixels of the `identity.enlarged` image, of float
    images [N, S, S, 3] (or one [S, S, 3]) in [-1, 1]."""
    predictor, rect = _predictor()
    x = np.asarray(images, np.float32)
    x = x[None] if x.ndim == 3 else x
    out = np.zeros((len(x), 68, 2), np.float32)
    for i, image in enumerate(x):
        out[i] = [(p.x, p.y) for p in predictor(identity.enlarged(image), rect).parts()]
    return out


def features(images) -> np.ndarray:
    """float64 [N, len(NAMES)]: the distances of PAIRS over the distance between the eyes' centres,
    and the inner gap's over the inner width, of images [N, S, S, 3] in [-1, 1]."""
    points = landmarks(images).astype(np.float64)
    eyes = np.linalg.norm(points[:, LEFT_EYE].mean(1) - points[:, RIGHT_EYE].mean(1), axis=1)
    eyes = np.maximum(eyes, 1e-6)
    dist = {name: np.linalg.norm(points[:, a] - points[:, b], axis=1) / eyes for name, (a, b) in PAIRS.items()}
    ratio = dist["inner_gap_middle"] / np.maximum(dist["inner_width"], 1e-3)
    return np.stack([*dist.values(), ratio], axis=1)


@dataclasses.dataclass(frozen=True)
class LogisticTerm:
    """logit = ((features - mean) / scale) · weights + bias: a logistic regression on standardised
    features, saved beside the judge's weights (`to_dict`, `from_dict`)."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float

    def logits(self, features_) -> np.ndarray:
        return ((np.asarray(features_, np.float64) - self.mean) / self.scale) @ self.weights + self.bias

    def to_dict(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": float(self.bias)}

    @classmethod
    def from_dict(cls, d: dict) -> LogisticTerm:
        return cls(*(np.asarray(d[k], np.float64) for k in ("mean", "scale", "weights")), float(d["bias"]))

    @classmethod
    def fit(cls, features_, labels, l2: float = 1.0, iterations: int = 50) -> LogisticTerm:
        """Minimises 0.5 l2 |w|² + Σ_i c_i log-loss_i by Newton's method (a dozen parameters), with
        each class weighing half (c_i = N / (2 N_class)) and the bias unpenalised: the decision at
        logit 0 balances the two classes' errors, as the judge's CNN is trained to."""
        x, y = np.asarray(features_, np.float64), np.asarray(labels, bool)
        if y.all() or not y.any():
            raise ValueError("the lip-geometry term needs both classes among its training images")
        mean, scale = x.mean(0), x.std(0)
        scale = np.where(scale > 1e-12, scale, 1.0)
        design = np.concatenate([(x - mean) / scale, np.ones((len(x), 1))], axis=1)
        weight = np.where(y, len(y) / (2.0 * y.sum()), len(y) / (2.0 * (~y).sum()))
        penalty = np.full(design.shape[1], float(l2))
        penalty[-1] = 0.0
        theta = np.zeros(design.shape[1])
        for _ in range(iterations):
            p = 1.0 / (1.0 + np.exp(-(design @ theta)))
            gradient = design.T @ (weight * (p - y)) + penalty * theta
            hessian = (design * (weight * p * (1 - p))[:, None]).T @ design + np.diag(penalty)
            step = np.linalg.solve(hessian + 1e-9 * np.eye(len(theta)), gradient)
            theta -= step
            if np.abs(step).max() < 1e-10:
                break
        return cls(mean, scale, theta[:-1], float(theta[-1]))
