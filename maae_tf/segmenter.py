"""`python -m maae_tf.segmenter` (documented as `python -m maae_tf.data.masks.segmenter --fetch`):
fetches (downloads, extracts, verifies) the selfie-segmentation model (maae_tf/data/masks/segmenter.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.data.masks import segmenter

flags.DEFINE_bool("fetch", False, "Download the model into the cache (if not there).")
flags.DEFINE_string("wheel", None, "Read the model from this mediapipe wheel instead of downloading it.")
flags.DEFINE_string("cache_dir", None, "Cache folder (default $MAAE_TF_CACHE or ~/.cache/maae_tf).")
FLAGS = flags.FLAGS


def main(argv):
    return segmenter.fetch_command(FLAGS.fetch, FLAGS.wheel, FLAGS.cache_dir)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
