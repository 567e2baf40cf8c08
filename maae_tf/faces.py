"""`python -m maae_tf.faces --measure FOLDER`: cross-checks face detection and alignment on
already aligned CelebA photos (maae_tf/data/faces.py `measure`)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.data.faces import measure

flags.DEFINE_string("measure", None, "Folder of aligned CelebA JPEGs to detect, align and compare with CelebA's "
                                     "own landmarks.", required=True)
FLAGS = flags.FLAGS


def main(argv):
    measure(FLAGS.measure)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
