"""Trains one attribute's M-AAE network.

    python -m maae_tf.train --attr=mouth_open --config=configs/quickstart.py --workdir=runs/quickstart
    python -m maae_tf.train --attr=blond_hair --config=configs/celeba.py \
        --config.data_dir=/data/celeba --workdir=runs/blond_hair

The workdir holds everything of a run: config.json (the resolved config, read back by evaluate,
export and bench; written once the resume has succeeded), checkpoints/ (tf.train.CheckpointManager,
numbered by step; a rerun resumes from the newest checkpoint that restores, also after kill -9,
without the state file, or past a truncated checkpoint, which goes to checkpoints/damaged/) and
tensorboard/ (scalars for every loss term and D's accuracy, edit grids, step time).
"""

from __future__ import annotations

import os
import sys

import keras
import tensorflow as tf
from absl import logging

from maae_tf import attributes
from maae_tf import config as config_lib
from maae_tf.training import distribute, settings
from maae_tf.model import precision
from maae_tf.training.callbacks import (CheckpointNotSaved, Checkpointer, HeldOutEvaluation, NonFiniteLoss, Profiler,
                               TrainMonitor, global_step)
from maae_tf.data import layout, pipeline, records
from maae_tf.model.spec import ModelSpec
from maae_tf.files import write_text_atomic
from maae_tf.model.maae import (build_model, checkpoint, checkpoint_files, describe_damaged, restore_newest,
                          saved_checkpoints)

# Settings that may change when a run is resumed; all others must match the saved config.json.
RESUMABLE_KEYS = ("train_steps", "log_every", "image_every", "checkpoint_every", "keep_checkpoints", "eval",
                  "shuffle_buffer", "strategy", "jit_compile")


def resolve_config(cfg, attr: str | None, overridden=()):
    """The run's config: --attr over config.attr, then config.by_attribute's settings for it
    (except the keys in `overridden`, set on the command line), checked."""
    cfg = cfg.copy_and_resolve_references()
    if attr:
        cfg.attr = attr
    cfg = config_lib.for_attribute(cfg, overridden)
    settings.check(cfg)
    return cfg


def prepare_data(cfg) -> None:
    """Builds the synthetic set when the config asks for it, only at its default place
    (config.SYNTHETIC_DIR: a folder the user names is never filled with synthetic faces), then
    checks the CelebA layout (or the prepared TFRecords, `python -m maae_tf.data.prepare`)."""
    builds = cfg.synthetic.build_if_missing
    at_default = bool(cfg.data_dir) and os.path.abspath(cfg.data_dir) == os.path.abspath(config_lib.SYNTHETIC_DIR)
    if (builds and at_default and not records.is_prepared(cfg.data_dir)
            and not os.path.exists(os.path.join(cfg.data_dir, "list_attr_celeba.txt"))):
        from maae_tf.data import synthetic

        logging.info("building the synthetic face set (%d images) in %s", cfg.synthetic.num, cfg.data_dir)
        synthetic.ensure(cfg.data_dir, cfg.synthetic.num, seed=cfg.synthetic.seed)
    try:
        pipeline.check_layout(cfg.data_dir)
    except FileNotFoundError as e:
        if builds and not at_default:
            raise FileNotFoundError(
                f"{e}\nthe synthetic set is built only in {config_lib.SYNTHETIC_DIR} (the quickstart's data_dir); "
                f"to build it elsewhere: python -m maae_tf.data.synthetic --out={cfg.data_dir} "
                f"--num={cfg.synthetic.num}") from None
        raise


def check_resume(cfg, workdir: str) -> None:
    """A workdir trained with other settings is not silently continued with new ones."""
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        return
    saved = config_lib.load_workdir_config(workdir).to_dict()
    new = cfg.to_dict()
    changed = sorted(k for k in set(saved) | set(new)
                     if k not in RESUMABLE_KEYS and saved.get(k) != new.get(k))
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {new.get(k)!r}" for k in changed)
        raise ValueError(f"{workdir} was trained with other settings ({details}); resume with the same "
                         "config or start a new --workdir")


def report_device() -> None:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        logging.info("training on %d GPU(s): %s", len(gpus), ", ".join(g.name for g in gpus))
    else:
        logging.warning("=" * 78)
        logging.warning("NO GPU VISIBLE TO TENSORFLOW: TRAINING ON THE CPU (%d cores). Fine for the "
                        "quickstart; the CelebA config needs a GPU.", os.cpu_count())
        logging.warning("=" * 78)


def held_out_batch(cfg, n: int) -> dict:
    """The first n images of the test split as one batch {"image", "mask", "labels"}, or of the
    train split (logged) when the dataset has no test images (e.g. a small sample). Fixed for the
    whole run: the TensorBoard edit grids and the in-training evaluation always show the same faces."""
    for split in ("test", "train"):
        try:
            batch = next(iter(pipeline.images_dataset(cfg, split=split, limit=n, batch_size=n)), None)
        except ValueError:  # a prepared folder without that split
            batch = None
        if batch is not None:
            if split != "test":
                logging.warning("no test images in %s: the edit grids and in-training evaluation use "
                                "training images", cfg.data_dir)
            return batch
    raise ValueError(f"{cfg.data_dir}: no images in the test or train split")


def edit_grid_images(cfg, n: int = 6):
    """The fixed images of the TensorBoard edit grids."""
    return held_out_batch(cfg, n)["image"]


def edit_evaluator(cfg, writer, workdir: str) -> HeldOutEvaluation | None:
    """The in-training evaluation (config.eval.every > 0): the dataset's attribute classifier
    (maae_tf.evaluation.classifier.for_dataset: trained once per dataset and cached, so the first run on a
    dataset trains it) and a fixed held-out batch of config.eval.batch test images."""
    if not cfg.eval.every:
        return None
    from maae_tf.evaluation import classifier

    attr = attributes.resolve(cfg.attr)
    judge, info = classifier.for_dataset(cfg, [attr])
    batch = held_out_batch(cfg, int(cfg.eval.batch))
    positive = batch["labels"].numpy()[:, attributes.index(attr)] > 0.5
    held_out = {"image": batch["image"].numpy(), "mask": batch["mask"].numpy(), "positive": positive}
    logging.info("in-training evaluation every %d steps on %d held-out images (%d positive); classifier %s "
                 "(test accuracy %.3f for %s)", cfg.eval.every, positive.size, positive.sum(), info["path"],
                 info["test_accuracy"][attr], attr)
    return HeldOutEvaluation(writer, cfg.eval.every, held_out, judge, classifier.column(info, attr), cfg.delta_max,
                         curve_dir=os.path.join(workdir, "eval"), title=f"{attr}: {workdir}")


def resume(model, directory: str, write: bool) -> str | None:
    """Restores the newest checkpoint in `directory` that reads back whole; returns it (None for a
    new run). Never starts over on top of saved checkpoints: when none restores it raises naming
    them. With `write` (the chief), damaged newer checkpoints are moved to `directory`/damaged/
    and a missing or stale state file is written again, each said in one line."""
    try:
        restored, damaged = restore_newest(model, directory)
    except ValueError as e:  # saved by other settings (e.g. config.json deleted, then width changed)
        raise ValueError(f"{e}; resume with the settings it was trained with, or start a new --workdir") from None
    if restored is None:
        if damaged:
            raise ValueError(f"{describe_damaged(damaged)}, and no older checkpoint restores: copy the run "
                             "again, or start a new --workdir")
        return None
    logging.info("resumed from %s", restored)
    if not write:
        return restored
    name = os.path.basename(restored)
    if damaged:
        aside = os.path.join(directory, "damaged")
        os.makedirs(aside, exist_ok=True)
        for prefix, _ in damaged:
            for f in checkpoint_files(prefix):
                os.replace(f, _free_path(os.path.join(aside, os.path.basename(f))))
        logging.warning("%s: resumed from %s, the newest checkpoint that restores; the damaged files are kept "
                        "in %s", describe_damaged(damaged), name, aside)
    state = tf.train.get_checkpoint_state(directory)
    if state is None or os.path.basename(state.model_checkpoint_path) != name:
        saved = saved_checkpoints(directory)
        if state is None:
            logging.warning("%s is missing: resumed from %s, the newest of the checkpoints there (%s), and "
                            "wrote the state file again", os.path.join(directory, "checkpoint"), name,
                            ", ".join(os.path.basename(p) for p in saved))
        elif not damaged:
            logging.warning("%s names %s, but %s is newer and restores: resumed from %s",
                            os.path.join(directory, "checkpoint"),
                            os.path.basename(state.model_checkpoint_path), name, name)
        write_checkpoint_state(directory, name, saved)
    return restored


def write_checkpoint_state(directory: str, latest: str, saved: list[str]) -> None:
    """Writes `directory`/checkpoint, the CheckpointManager's state (a text CheckpointState proto),
    naming `latest` and the checkpoints `saved` with their file times, so that keep_checkpoints
    goes on deleting the oldest of them."""
    times = [max(os.path.getmtime(f) for f in checkpoint_files(p)) for p in saved]
    lines = ([f'model_checkpoint_path: "{latest}"']
             + [f'all_model_checkpoint_paths: "{os.path.basename(p)}"' for p in saved]
             + [f"all_model_checkpoint_timestamps: {t!r}" for t in times]
             + [f"last_preserved_timestamp: {min(times) - 1.0!r}"])
    write_text_atomic(os.path.join(directory, "checkpoint"), "\n".join(lines) + "\n")


def _free_path(path: str) -> str:
    """`path`, or `path`.1, .2 ... when it exists (an earlier damaged copy is kept too)."""
    candidate, k = path, 0
    while os.path.exists(candidate):
        k += 1
        candidate = f"{path}.{k}"
    return candidate


def parse_profile_steps(value: str | None):
    if not value:
        return None
    try:
        start, end = (int(v) for v in value.split(","))
    except ValueError:
        raise ValueError(f"--profile_steps must be START,END (two integers), got {value!r}") from None
    return start, end


def train(cfg, workdir: str, profile_steps=None, strategy=None) -> keras.Model:
    """Trains (or resumes) the run in `workdir` to cfg.train_steps; returns the model.
    `strategy` overrides config.strategy (tests pass a MirroredStrategy over logical CPUs)."""
    # first: MultiWorkerMirroredStrategy must exist before any other TensorFlow op runs
    strategy = strategy or distribute.make_strategy(cfg.strategy)
    distribute.check_jit(strategy, cfg.jit_compile)
    if cfg.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size {cfg.batch_size} (the global batch) must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas")
    out = distribute.write_dir(workdir, strategy)  # workdir on the chief, a throwaway folder elsewhere
    prepare_data(cfg)
    check_resume(cfg, out)
    report_device()
    keras.utils.set_random_seed(cfg.seed)
    precision.apply(cfg.precision)

    with strategy.scope():
        model = build_model(ModelSpec.from_config(cfg))
    # every worker resumes from the chief's checkpoints (multi-host: keep workdir on shared storage)
    resume(model, os.path.join(workdir, "checkpoints"), write=distribute.is_chief(strategy))
    config_lib.save_workdir_config(cfg, out)  # only now: a resume that fails leaves the saved config as it was
    manager = tf.train.CheckpointManager(checkpoint(model), os.path.join(out, "checkpoints"),
                                         max_to_keep=cfg.keep_checkpoints)
    step = global_step(model)
    if step >= cfg.train_steps:
        logging.info("already trained to step %d (train_steps=%d)", step, cfg.train_steps)
        return model

    try:
        fit(model, cfg, strategy, manager, workdir, out, profile_steps)
    except tf.errors.InvalidArgumentError as e:  # a damaged image file of a release-layout folder
        problem = pipeline.explain_decode_error(e, cfg)
        if problem is None:
            raise
        raise ValueError(f"{problem}: training stopped, the checkpoints saved so far are kept; remove the file "
                         f"and its row in {layout.ATTR_FILE}, or prepare the folder (python -m maae_tf.data.prepare "
                         "skips unreadable images), then rerun to resume") from None
    return model


def fit(model, cfg, strategy, manager, workdir: str, out: str, profile_steps=None) -> None:
    """Trains the restored `model` from its step to cfg.train_steps, writing to `out`."""
    step = global_step(model)
    multi_worker = distribute.kind_of(strategy) == "multi_worker"
    # A resumed run reshuffles from a seed tied to its step, rather than replaying the first pairs.
    data_cfg = cfg.copy_and_resolve_references()
    data_cfg.seed = cfg.seed + step
    pairs = pipeline.pairs_dataset(data_cfg, split="train")
    held_out = edit_grid_images(cfg)

    writer = tf.summary.create_file_writer(os.path.join(out, "tensorboard"))
    monitor = TrainMonitor(writer, cfg.batch_size, cfg.log_every, cfg.image_every, held_out, cfg.delta_max,
                           total_steps=cfg.train_steps)
    callbacks = [monitor]
    if distribute.is_chief(strategy):  # the other workers of a multi-host run write nothing
        evaluator = edit_evaluator(cfg, writer, out)
        if evaluator is not None:
            callbacks.append(evaluator)
    if profile_steps:
        callbacks.append(Profiler(os.path.join(out, "tensorboard"), *profile_steps))
    # last: a step whose loss is not finite stops the run before it is saved
    callbacks.append(Checkpointer(manager, cfg.checkpoint_every))
    logging.info("attribute %s: training steps %d -> %d, global batch %d pairs on %d replica(s), %d px, width %g, "
                 "workdir %s", attributes.resolve(cfg.attr), step, cfg.train_steps, cfg.batch_size,
                 strategy.num_replicas_in_sync, cfg.image_size, cfg.width, workdir)
    if multi_worker:
        distribute.custom_loop(model, strategy, pairs, cfg.train_steps - step, callbacks,
                               files_sharded=records.is_prepared(cfg.data_dir))
    else:
        # one epoch of exactly the steps asked for; the Checkpointer saves on the global step count
        model.fit(pairs, epochs=1, steps_per_epoch=cfg.train_steps - step, verbose=0, shuffle=False,
                  callbacks=callbacks)
    writer.flush()


# Exit codes: 2 = refused or stopped on a bad input, setting or file (nothing lost); 3 = training
# diverged (a loss term not finite: the run stopped before saving that state, the last checkpoint
# is the last good one; rerunning the same settings would diverge again).
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


def train_command(cfg, attr: str | None, workdir: str | None, profile_steps: str | None, overridden=()) -> None:
    """`python -m maae_tf.train`: trains `cfg` (`resolve_config` with `attr` and the `overridden`
    keys) into `workdir` (default runs/<attr>); a bad input ends in one `error:` line and
    EXIT_BAD_INPUT, a diverged run in EXIT_DIVERGED."""
    try:
        cfg = resolve_config(cfg, attr, overridden)
        workdir = workdir or os.path.join("runs", attributes.snake(cfg.attr))
        train(cfg, workdir, parse_profile_steps(profile_steps))
    except (FileNotFoundError, ValueError, CheckpointNotSaved) as e:
        fail(e, EXIT_BAD_INPUT)
    except NonFiniteLoss as e:
        fail(e, EXIT_DIVERGED)
    logging.info("done: %s", workdir)


def fail(error: Exception, code: int) -> None:
    """Ends the command with one `error:` line and exit `code`, no traceback."""
    print(f"error: {error}", file=sys.stderr)
    sys.exit(code)
