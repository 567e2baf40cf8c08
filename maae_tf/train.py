"""`python -m maae_tf.train`: trains one attribute's network (maae_tf/training/loop.py)."""

from absl import flags
from ml_collections import config_flags

from maae_tf import config as config_lib
from maae_tf.training import loop

flags.DEFINE_string("attr", None, "Attribute to learn (snake_case alias or CelebA name); overrides config.attr.")
flags.DEFINE_string("workdir", None, "Run folder (config, checkpoints, summaries); default runs/<attr>.")
flags.DEFINE_string("profile_steps", None, "START,END: write a TensorBoard profile of these global steps.")
config_lib.define_config_file(config_lib.DEFAULT_CONFIG)
FLAGS = flags.FLAGS


def main(argv):
    loop.train_command(FLAGS.config, FLAGS.attr, FLAGS.workdir, FLAGS.profile_steps,
                       config_flags.get_override_values(FLAGS["config"]))


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main, config_lib.DEFAULT_CONFIG)


if __name__ == "__main__":
    run()
