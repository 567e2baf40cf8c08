"""What serving costs on top of the generator itself: the three paths of maae_tf/serving/bench.py,
path (c) through the in-process test double of tensorflow_model_server (the real server cannot run
here; tests/support/tf_serving_double.py), hence a script beside the package, not in it.

    python benchmarks/serving_bench.py [--config=configs/celeba.py | --workdir=runs/x] [--image_size=128]
                                       [--width=W] [--latency_calls=30] [--throughput_calls=4] [--json]

With --workdir the run's trained networks are used; otherwise a network of --config is built with
random weights (speed does not depend on the weights).
"""

import os
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]  # this checkout's package, and the test double beside its tests

from maae_tf import config as config_lib  # noqa: E402
from maae_tf.serving import bench  # noqa: E402
from support.tf_serving_double import ModelServerDouble  # noqa: E402

config_lib.define_config_file(config_lib.DEFAULT_CONFIG, help="Network config.")
flags.DEFINE_string("workdir", None, "Benchmark this trained run instead of a random network of --config.")
flags.DEFINE_integer("image_size", 128, "Image size (ignored with --workdir: the run's size).")
flags.DEFINE_alias("size", "image_size")  # the spelling of earlier docs
flags.DEFINE_float("width", None, "Width multiplier (default: the config's).")
flags.DEFINE_integer("latency_calls", 30, "Timed calls at batch 1.")
flags.DEFINE_integer("throughput_calls", 4, "Timed calls at batch 32.")
flags.DEFINE_integer("batch", 32, "Batch of the throughput measurement.")
flags.DEFINE_bool("json", False, "Print one JSON object.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    editor, what = bench.editor_to_time(FLAGS.workdir, FLAGS.config, FLAGS.image_size, FLAGS.width)
    bench.bench_command(editor, what, FLAGS.batch, FLAGS.latency_calls, FLAGS.throughput_calls, FLAGS.json,
                        server=ModelServerDouble)


if __name__ == "__main__":
    config_lib.run_command(main, config_lib.DEFAULT_CONFIG)
