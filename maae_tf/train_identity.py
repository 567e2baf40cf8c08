"""`python -m maae_tf.train_identity`: the identity network F_ID trained as a face recogniser
(maae_tf/training/identity.py)."""

from absl import app, flags

from maae_tf import config as config_lib
from maae_tf.training import identity

flags.DEFINE_string("data_dir", None, "Dataset in the CelebA release layout with identity_CelebA.txt.")
flags.DEFINE_string("out", None, "Weight file to write (.h5).")
flags.DEFINE_integer("image_size", 64, "Image size S (use the M-AAE run's image_size).")
flags.DEFINE_alias("size", "image_size")  # the spelling of earlier docs
flags.DEFINE_float("width", 1.0, "Channel width factor (use the M-AAE run's width; 1.0 = VGG16's).")
flags.DEFINE_integer("steps", 2000, "Training steps.")
flags.DEFINE_integer("batch", 32, "Images per step.")
flags.DEFINE_float("learning_rate", 3e-4, "Adam learning rate.")
flags.DEFINE_integer("seed", 0, "Seed of the hold-out choice, the shuffling and the initial weights.")
FLAGS = flags.FLAGS


def main(argv):
    if not FLAGS.data_dir or not FLAGS.out:
        raise app.UsageError("--data_dir and --out are required")
    identity.train_identity_command(FLAGS.data_dir, FLAGS.out, FLAGS.image_size, FLAGS.width, FLAGS.steps,
                                    FLAGS.batch, FLAGS.learning_rate, FLAGS.seed)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
