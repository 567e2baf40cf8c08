"""The optimizers of G and D (paper §4.1): Adam with a constant or cosine learning rate."""

from __future__ import annotations

import dataclasses

import keras

LR_SCHEDULES = ("constant", "cosine")


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
    """Adam's settings for G and D, and whether the training step is XLA-compiled."""

    learning_rate: float
    lr_schedule: str   # one of LR_SCHEDULES
    beta_1: float
    beta_2: float
    train_steps: int   # where the cosine schedule reaches 0
    ema_momentum: float  # of the moving average of G's weights kept by G's optimizer (0 = none)
    ema_warmup: bool     # the average's momentum grows with the step up to ema_momentum (WarmedUpAverage)
    jit_compile: bool


def learning_rate(spec: OptimizerSpec):
    """The paper's constant rate (lr_schedule="constant"), or a cosine decay to 0 at
    spec.train_steps (lr_schedule="cosine", short CPU runs). Schedules read the optimizer's
    iteration count, so a resumed run continues on the same curve."""
    if spec.lr_schedule == "constant":
        return spec.learning_rate
    return keras.optimizers.schedules.CosineDecay(spec.learning_rate, decay_steps=spec.train_steps)


class WarmedUpAverage(keras.optimizers.Adam):
    """Adam whose moving average of the weights (use_ema) warms up: at step t (from 0) the momentum
    is min(ema_momentum, (1 + t) / (10 + t)), as tf.train.ExponentialMovingAverage's num_updates,
    so the average spans the last ~t/9 steps until that reaches 1 / (1 - ema_momentum). Keras's
    plain average keeps ema_momentum^t of the first, far-off weights: 5 % at step 6,000 for 0.9995
    (docs/method.md §10, runs AC and AD)."""

    def _update_model_variables_moving_average(self, trainable_variables):
        # Keras's hook, called after each update step (before the step counter moves)
        t = keras.ops.cast(self.iterations, "float32")
        warm = keras.ops.minimum(self.ema_momentum, (1.0 + t) / (10.0 + t))
        momentum = keras.ops.where(keras.ops.equal(t, 0.0), 0.0, warm)  # the first step copies
        for var, average in zip(trainable_variables, self._model_variables_moving_average):
            if average is not None:
                m = keras.ops.cast(momentum, var.dtype)
                average.assign(m * average + (1 - m) * var)


def make_optimizers(spec: OptimizerSpec):
    """Adam(lr 1e-4, β = (0.5, 0.999)) for G and for D (paper §4.1). Under the mixed_float16
    policy each is wrapped in a LossScaleOptimizer (dynamic loss scale: apply_gradients unscales
    and skips a step whose gradients are not finite); bfloat16 and float32 need no scaling.
    With spec.ema_momentum, G's Adam also keeps the moving average of G's weights (Keras's
    use_ema: updated after every step, checkpointed with the optimizer, never written over the
    live weights during training); with spec.ema_warmup that average warms up (WarmedUpAverage)."""
    def make(name, average=False):
        ema = {"use_ema": True, "ema_momentum": spec.ema_momentum} if average and spec.ema_momentum else {}
        adam_class = WarmedUpAverage if ema and spec.ema_warmup else keras.optimizers.Adam
        adam = adam_class(learning_rate(spec), spec.beta_1, spec.beta_2, name=name, **ema)
        if keras.mixed_precision.global_policy().name == "mixed_float16":
            return keras.optimizers.LossScaleOptimizer(adam, name=f"{name}_loss_scale")
        return adam
    return make("g_adam", average=True), make("d_adam")
