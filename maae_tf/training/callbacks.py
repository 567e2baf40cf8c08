"""Keras callbacks of a training run: the progress line, TensorBoard scalars and image grids,
the non-finite-loss guard, and step-numbered checkpoints (tf.train.CheckpointManager)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf import progress
from maae_tf.evaluation import evaluators
from maae_tf.evaluation import registry
from maae_tf.evaluation import visualize
from maae_tf.files import write_bytes_atomic, write_text_atomic
from maae_tf.model.maae import averaged_generator


def global_step(model) -> int:
    """Training steps done: the generator optimizer's iteration count (restored with checkpoints)."""
    return int(model.g_optimizer.iterations.numpy())


class NonFiniteLoss(FloatingPointError):
    pass


class CheckpointNotSaved(RuntimeError):
    """A checkpoint could not be written (a full disk): the run stops, the saved ones are kept."""


class TrainMonitor(keras.callbacks.Callback):
    """Every `log_every` steps: one progress line (step/`total_steps`, pairs/s, ETA) and TensorBoard
    scalars for every loss term and D's accuracy; every `image_every` steps: an edit grid of a fixed
    held-out batch. Stops the run with NonFiniteLoss, naming the term, when a loss is NaN or
    infinite (the last checkpoint on disk stays the last good one)."""

    def __init__(self, writer, batch_size: int, log_every: int, image_every: int,
                 images=None, delta_max: float = 5.0, sweep: int = 5, total_steps: int = 0):
        super().__init__()
        self.writer = writer
        self.total_steps = int(total_steps)
        self.tracker = None
        self.batch_size = batch_size
        self.log_every = max(1, log_every)
        self.image_every = image_every
        self.images = images
        self.delta_max = delta_max
        self.sweep = sweep
        self._t = None
        self._t_step = None

    def on_train_begin(self, logs=None):
        self._t, self._t_step = time.perf_counter(), global_step(self.model)
        # the ETA's rate counts the steps of this process only (a resumed run from its restored step)
        self.tracker = progress.Tracker(self.total_steps, start=self._t_step)
        if self.images is not None and self.image_every:
            self._write_images(self._t_step)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        logs = logs or {}
        for name, value in logs.items():
            if not math.isfinite(float(value)):
                raise NonFiniteLoss(f"loss term {name!r} is {float(value)} at step {step}; training stopped "
                                    "without saving this state (the last checkpoint is the last good one). "
                                    "Try a lower learning_rate, or precision='float32'.")
        if step % self.log_every == 0:
            now = time.perf_counter()
            dt = (now - self._t) / max(1, step - self._t_step)
            self._t, self._t_step = now, step
            with self.writer.as_default(step=step):
                for name, value in logs.items():
                    tf.summary.scalar(f"train/{name}", float(value))
                tf.summary.scalar("perf/step_seconds", dt)
                tf.summary.scalar("perf/pairs_per_second", self.batch_size / dt)
            terms = " ".join(f"{k}={float(v):.4g}" for k, v in sorted(logs.items()))
            eta = progress.eta_seconds(step, self.total_steps, self.tracker.rate(step))
            logging.info("step %s | %s | %.0f ms/step, %.1f pairs/s, ETA %s", progress.fraction(step, self.total_steps),
                         terms, 1000 * dt, self.batch_size / dt, progress.clock(eta))
        if self.images is not None and self.image_every and step % self.image_every == 0:
            self._write_images(step)

    def _write_images(self, step):
        with averaged_generator(self.model) as model:
            titles, cols = visualize.edit_columns(model, self.images, self.delta_max, self.sweep)
        grid = visualize.grid(cols)
        with self.writer.as_default(step=step):
            tf.summary.image("edits/" + "|".join(titles), grid[None].astype(np.float32) / 255.0, max_outputs=1)
        self.writer.flush()


class Checkpointer(keras.callbacks.Callback):
    """Saves a checkpoint numbered by the global step whenever that step is a multiple of `every`
    (config.checkpoint_every), and at the end of training: a run of 7 steps with every=5 leaves
    ckpt-5 and ckpt-7, and a resumed run keeps the same numbers."""

    def __init__(self, manager: tf.train.CheckpointManager, every: int):
        super().__init__()
        self.manager = manager
        self.every = int(every)

    def save(self):
        step = global_step(self.model)
        if self.manager.latest_checkpoint and self.manager.latest_checkpoint.endswith(f"-{step}"):
            return
        try:
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            prefix = os.path.join(self.manager.directory, f"ckpt-{step}")
            shutil.rmtree(prefix + "_temp", ignore_errors=True)  # TensorFlow's half-written copy
            reason = re.sub(r"\{\{.*?\}\}\s*", "", str(e)).split(" [")[0].rsplit("; ", 1)[-1].strip()
            raise CheckpointNotSaved(
                f"cannot save checkpoint {prefix} ({reason}): training stopped at step {step}; the checkpoints "
                f"already there are kept (newest: {self.manager.latest_checkpoint}); free space and rerun to "
                "resume") from None
        logging.info("checkpoint %s", path)

    def on_train_batch_end(self, batch, logs=None):
        if global_step(self.model) % self.every == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()


class Profiler(keras.callbacks.Callback):
    """Writes a TensorBoard profile (plugins/profile/…) of the global steps START..END
    (`--profile_steps=START,END`); view it with `tensorboard --logdir WORKDIR/tensorboard` and the
    `tensorboard-plugin-profile` package (`pip install -e ".[profile]"`)."""

    def __init__(self, logdir: str, start: int, end: int):
        super().__init__()
        if not 0 <= start < end:
            raise ValueError(f"profile_steps must be START,END with 0 <= START < END, got {start},{end}")
        self.logdir, self.start, self.end = logdir, start, end
        self.active = False

    def on_train_batch_begin(self, batch, logs=None):
        if not self.active and self.start <= global_step(self.model) < self.end:
            tf.profiler.experimental.start(self.logdir)
            self.active = True

    def on_train_batch_end(self, batch, logs=None):
        if self.active and global_step(self.model) >= self.end:
            self._stop()

    def on_train_end(self, logs=None):
        if self.active:
            self._stop()

    def _stop(self):
        tf.profiler.experimental.stop()
        self.active = False
        logging.info("profile of steps %d-%d written to %s/plugins/profile", self.start, self.end, self.logdir)


class HeldOutEvaluation(keras.callbacks.Callback):
    """In-training evaluation (config.eval.every): every `every` steps, the evaluators of the
    evaluation command (`maae_tf.evaluation.evaluators`: the judge's edit and keep accuracies, pixel
    PSNR and L1, D's fidelity score) on a fixed held-out batch of test images; the registry's
    TensorBoard metrics go to eval/<tag> and a progress line, so a run whose edits stop working
    shows it long before its final evaluation.

    `held_out`: dict image [N, S, S, 3], mask [N, S, S, 1], positive bool [N];
    `judge`: the dataset's attribute classifier, `column`: the run attribute's output."""

    def __init__(self, writer, every: int, held_out: dict, judge, column: int, delta_max: float,
                 curve_dir: str | None = None, title: str = ""):
        super().__init__()
        self.writer = writer
        self.every = int(every)
        self.held_out = held_out
        # no SSIM nor identity here: the slowest scores, left to the final evaluation
        self.evaluators = [evaluators.EditEvaluator(judge, column), evaluators.PixelEvaluator(ssim=False),
                           evaluators.DiscriminatorEvaluator()]
        self.delta_max = float(delta_max)
        # eval/curve.json (every evaluation, kept across resumes) and eval/curve.png drawn from it
        self.curve_dir, self.title = curve_dir, title
        self.history: list[dict] = []
        self._t0, self._seconds0 = None, 0.0

    def summary(self) -> dict:
        """The evaluators' metrics of the held-out batch (means and counts; None where nothing counts)."""
        with averaged_generator(self.model) as model:
            out, positive = evaluators.run(model, [self.held_out], self.evaluators, self.delta_max)
        out["num_positives"] = int(np.sum(positive))
        return out

    def evaluate(self, step: int) -> dict:
        m = self.summary()
        with self.writer.as_default(step=step):
            for metric in registry.tensorboard_metrics():
                if m.get(metric.key) is not None:
                    tf.summary.scalar(f"eval/{metric.tag}", m[metric.key])
        self.writer.flush()
        v = {key: math.nan if value is None else value for key, value in m.items()}
        logging.info("eval step %d | editing accuracy %.3f (+δ0 %.3f, -δ0 %.3f) | label kept by the other "
                     "edit %.3f, by G(x, 0) %.3f | background PSNR %.2f dB | reconstruction PSNR %.2f dB | "
                     "fidelity %.3f | %d held-out test images (%d positive)",
                     step, v["attribute_accuracy"], v["attribute_accuracy_plus"], v["attribute_accuracy_minus"],
                     v["attribute_keep_accuracy"], v["reconstruction_attribute_accuracy"], v["background_psnr"],
                     v["reconstruction_psnr"], v["fidelity_score"], m["attribute_accuracy_count"],
                     m["num_positives"])
        self._add_to_curve(step, m)
        return m

    def _add_to_curve(self, step: int, m: dict) -> None:
        if not self.curve_dir:
            return
        seconds = self._seconds0 + (time.perf_counter() - self._t0 if self._t0 is not None else 0.0)
        self.history = [h for h in self.history if h["step"] < step]  # a resume re-evaluates its step
        self.history.append({"step": step, "seconds": round(seconds, 1),
                             **{key: m[key] for key, _, _ in visualize.CURVE_LINES}})
        os.makedirs(self.curve_dir, exist_ok=True)
        write_text_atomic(os.path.join(self.curve_dir, "curve.json"), json.dumps(self.history, indent=1))
        write_bytes_atomic(os.path.join(self.curve_dir, "curve.png"), visualize.curve_png(self.history, self.title))

    def _load_curve(self, step: int) -> None:
        """A resumed run continues its curve: the entries up to its step, wall time counted on."""
        path = os.path.join(self.curve_dir or "", "curve.json")
        if self.curve_dir and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as f:
                    self.history = [h for h in json.load(f) if h["step"] <= step]
            except (ValueError, KeyError, TypeError):
                logging.warning("%s is not a curve file: the curve starts again", path)
                self.history = []
        self._seconds0 = self.history[-1]["seconds"] if self.history else 0.0

    def on_train_begin(self, logs=None):
        step = global_step(self.model)
        self._load_curve(step)
        self._t0 = time.perf_counter()
        if self.every and step == 0:  # the untrained baseline (a resume logged its step)
            self.evaluate(0)

    def on_train_batch_end(self, batch, logs=None):
        step = global_step(self.model)
        if self.every and step % self.every == 0:
            self.evaluate(step)
