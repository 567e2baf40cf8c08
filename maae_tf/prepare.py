"""`python -m maae_tf.prepare` (documented as `python -m maae_tf.data.prepare`): CelebA into
sharded TFRecords with a background mask per image (maae_tf/data/prepare.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.data import prepare

flags.DEFINE_string("celeba_dir", None, "CelebA release folder (img_align_celeba/, list_attr_celeba.txt, ...).")
flags.DEFINE_string("out", None, "Output folder of the prepared TFRecords.")
flags.DEFINE_integer("image_size", 128, "Side of the stored (cropped) images.")
flags.DEFINE_alias("size", "image_size")  # the spelling of earlier docs
flags.DEFINE_string("masks", "none", "Mask source: none | files | celebamask_hq:DIR | segmenter | landmarks.")
flags.DEFINE_integer("workers", 0, "Worker processes (0: every core).")
flags.DEFINE_integer("shard_size", 1000, "Images per shard.")
FLAGS = flags.FLAGS


def main(argv):
    prepare.prepare_command(FLAGS.celeba_dir, FLAGS.out, FLAGS.image_size, FLAGS.masks, FLAGS.workers or None,
                            FLAGS.shard_size)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
