"""`python -m maae_tf.synthetic` (documented as `python -m maae_tf.data.synthetic`): builds the
synthetic face set in the CelebA release layout (maae_tf/data/synthetic.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.data import synthetic

flags.DEFINE_string("out", None, "Folder to write the synthetic CelebA-layout set into.")
flags.DEFINE_integer("num_images", None, "Number of images.", lower_bound=1)
flags.DEFINE_alias("num", "num_images")  # the spelling of earlier docs
flags.DEFINE_integer("seed", 0, "Seed; the same seed gives byte-identical files.")
flags.DEFINE_integer("workers", 0, "Processes to render with (0: os.cpu_count()).", lower_bound=0)
flags.mark_flags_as_required(["out", "num_images"])
FLAGS = flags.FLAGS


def main(argv):
    synthetic.build(FLAGS.out, FLAGS.num_images, FLAGS.seed, FLAGS.workers or None)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
