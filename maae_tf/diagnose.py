"""`python -m maae_tf.diagnose`: where a run's forces go (maae_tf/evaluation/diagnose.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.evaluation import diagnose

flags.DEFINE_string("workdir", None, "Training run folder (config.json, checkpoints/).", required=True)
flags.DEFINE_integer("num_images", 64, "Test images (both classes are paired up to the smaller count).")
FLAGS = flags.FLAGS


def main(argv):
    diagnose.diagnose_command(FLAGS.workdir, FLAGS.num_images)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
