"""tf.distribute for training (`config.strategy`), and the custom loop multi-worker training needs.

    "auto"          multi_worker when TF_CONFIG describes a cluster of several tasks, mirrored when
                    more than one GPU is visible, else one_device
    "one_device"    TensorFlow's default strategy: the first GPU, or the CPU
    "mirrored"      tf.distribute.MirroredStrategy over every local GPU (synchronous data
                    parallelism on one host); trains with Keras fit()
    "multi_worker"  tf.distribute.MultiWorkerMirroredStrategy across hosts, configured by the
                    TF_CONFIG environment variable of each process; trains with `custom_loop`
                    (Keras 3's fit() fails under it, docs/stack.md)
    "tpu"           tf.distribute.TPUStrategy on the TPU the environment provides

`config.batch_size` is the GLOBAL batch (pairs per step over all replicas); each replica gets
batch_size / replicas, and `MAAE.train_step` divides its hand-written loss means by the replica
count, so one step on N replicas equals one step on one device with the same global batch (its
random draws are sliced the same way too: `MAAE.noise`). Only the chief writes summaries and the
real checkpoints; the other workers write theirs to a throwaway folder (every worker must save,
since saving a distributed checkpoint is a collective operation).
"""

from __future__ import annotations

import json
import os
import tempfile

import tensorflow as tf
from absl import logging

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")


def tf_config() -> dict:
    """The parsed TF_CONFIG environment variable ({} when unset); a malformed one is an error."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise ValueError(f"TF_CONFIG is not valid JSON ({e}): {raw[:200]}") from None
    if not isinstance(value, dict) or "cluster" not in value or "task" not in value:
        raise ValueError('TF_CONFIG must hold "cluster" and "task", e.g. {"cluster": {"worker": '
                         '["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    return value


def cluster_size(config: dict) -> int:
    return sum(len(v) for k, v in config.get("cluster", {}).items() if k in ("chief", "worker"))


def resolve(name: str) -> str:
    """The strategy `name` stands for here ("auto" decided from TF_CONFIG and the GPUs)."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")
    if name != "auto":
        return name
    if cluster_size(tf_config()) > 1:
        return "multi_worker"
    return "mirrored" if len(tf.config.list_physical_devices("GPU")) > 1 else "one_device"


def make_strategy(name: str, devices=None) -> tf.distribute.Strategy:
    """The tf.distribute strategy for `config.strategy` (`devices`: mirrored's device list; default
    every GPU). Must be called before any other TensorFlow op when it is multi_worker."""
    kind = resolve(name)
    if kind == "one_device":
        strategy = tf.distribute.get_strategy()  # no wrapper: what Keras does without a strategy
    elif kind == "mirrored":
        strategy = tf.distribute.MirroredStrategy(devices)
    elif kind == "multi_worker":
        config = tf_config()
        if cluster_size(config) < 1:
            raise ValueError("strategy multi_worker needs TF_CONFIG with the cluster and this task (see README, "
                             "'Several GPUs and hosts')")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.OpError) as e:
            raise ValueError(f"strategy tpu: no TPU found ({e})") from None
        strategy = tf.distribute.TPUStrategy(resolver)
    logging.info("strategy %s%s: %d replica(s)", kind, " (strategy=auto)" if name == "auto" else "",
                 strategy.num_replicas_in_sync)
    return strategy


def kind_of(strategy: tf.distribute.Strategy) -> str:
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return "multi_worker"
    if isinstance(strategy, tf.distribute.MirroredStrategy):
        return "mirrored"
    if isinstance(strategy, tf.distribute.TPUStrategy):
        return "tpu"
    return "one_device"


def check_jit(strategy: tf.distribute.Strategy, jit_compile: bool) -> None:
    """XLA (config.jit_compile) compiles the step on one device only: say so instead of crashing."""
    if jit_compile and kind_of(strategy) in ("mirrored", "multi_worker"):
        raise ValueError(f"jit_compile=True does not work under the {kind_of(strategy)} strategy (Keras 3 "
                         "fails to compile the replicated step); use strategy=one_device with jit_compile, "
                         "or jit_compile=False")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True for the process that writes summaries and checkpoints."""
    if kind_of(strategy) != "multi_worker":
        return True
    resolver = strategy.cluster_resolver
    task_type, task_id = resolver.task_type, resolver.task_id
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0) or task_type is None


def write_dir(workdir: str, strategy: tf.distribute.Strategy) -> str:
    """`workdir` on the chief; a throwaway folder on the other workers."""
    if is_chief(strategy):
        return workdir
    resolver = strategy.cluster_resolver
    return tempfile.mkdtemp(prefix=f"maae-{resolver.task_type}-{resolver.task_id}-")


def distribute(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset, files_sharded: bool = False):
    """The dataset split over workers: FILE sharding when it reads sharded files (TFRecords), DATA
    otherwise (every worker runs the pipeline and keeps its share of the batches)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.FILE if files_sharded else tf.data.experimental.AutoShardPolicy.DATA)
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def custom_loop(model, strategy: tf.distribute.Strategy, dataset: tf.data.Dataset, steps: int, callbacks=(),
                files_sharded: bool = False):
    """Trains `model` for `steps` steps with strategy.run(model.train_step) (the multi-worker
    path): the Keras callbacks get on_train_begin / on_train_batch_end(logs) / on_train_end like
    fit() gives them (checkpoints: the train command's Checkpointer callback)."""
    iterator = iter(distribute(strategy, dataset, files_sharded))

    @tf.function
    def step_fn(it):
        per_replica = strategy.run(model.train_step, args=(next(it),))
        return {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None) for k, v in per_replica.items()}

    for cb in callbacks:
        cb.set_model(model)
        cb.on_train_begin()
    logs = {}
    for i in range(steps):
        for cb in callbacks:
            cb.on_train_batch_begin(i)
        logs = step_fn(iterator)
        for cb in callbacks:
            cb.on_train_batch_end(i, logs)
    for cb in callbacks:
        cb.on_train_end(logs)
    return logs
