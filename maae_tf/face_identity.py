"""`python -m maae_tf.face_identity`: checks that the identity metric separates people (maae_tf/evaluation/identity.py)."""

from absl import app, flags

from maae_tf import config as config_lib
from maae_tf.evaluation import identity

flags.DEFINE_string("images", None, "Folder of aligned 178x218 CelebA photos (or a CelebA release root).")
flags.DEFINE_integer("limit", 32, "Use the first LIMIT images (sorted by name).")
flags.DEFINE_integer("image_size", 128, "Side of the crops, as the model sees them.")
flags.DEFINE_integer("jpeg_quality", 30, "JPEG quality of the degraded self copies.")
flags.DEFINE_enum("embedder", "auto", [*identity.EMBEDDERS, *identity.RENAMED],
                  "Face embedding network (training: the run's own F_ID; fid: its deprecated name).")
flags.DEFINE_string("out", None, "Write the figures to this JSON file.")
flags.DEFINE_enum("identity_source", "imagenet", ["imagenet", "h5", "random"],
                  "F_ID weights for --embedder=training (config.identity.source).")
flags.DEFINE_string("identity_weights_path", "", "F_ID h5 weight file for --identity_source=h5.")
FLAGS = flags.FLAGS


def main(argv):
    if not FLAGS.images:
        raise app.UsageError("--images is required")
    identity.check_command(FLAGS.images, FLAGS.out, FLAGS.limit, FLAGS.image_size, FLAGS.jpeg_quality,
                           FLAGS.embedder, FLAGS.identity_source, FLAGS.identity_weights_path)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
