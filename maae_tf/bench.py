"""`python -m maae_tf.bench`: the training step's speed, arithmetic and input pipeline beside a peer
(maae_tf/training/bench.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.training import bench

flags.DEFINE_integer("image_size", None, "Image size S (default: the config's).")
flags.DEFINE_alias("size", "image_size")  # the spelling of earlier docs
flags.DEFINE_integer("batch", None, "Pairs per step (default: the config's).")
flags.DEFINE_float("width", None, "Channel width factor (default: the config's).")
flags.DEFINE_integer("steps", 5, "Timed steps (after 2 warm-up steps).")
flags.DEFINE_list("precision", ["float32", "auto"], "Precisions to time (auto: what precision=auto picks here).")
flags.DEFINE_integer("pipeline_batches", 30, "Batches read to time the input pipeline (0: skip).")
flags.DEFINE_string("torch_python", "/tmp/torchvenv/bin/python", "Python with torch for the reference ('' skips).")
flags.DEFINE_string("reference", bench.REFERENCE, "The PyTorch reference step (torch_reference.py).")
flags.DEFINE_bool("json", False, "Print one JSON object.")
config_lib.define_config_file(config_lib.DEFAULT_CONFIG, help="Config file.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    bench.bench_command(FLAGS.config, FLAGS.image_size, FLAGS.batch, FLAGS.width, FLAGS.precision, FLAGS.steps,
                        FLAGS.pipeline_batches, FLAGS.torch_python, FLAGS.reference, FLAGS.json)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main, config_lib.DEFAULT_CONFIG)


if __name__ == "__main__":
    run()
