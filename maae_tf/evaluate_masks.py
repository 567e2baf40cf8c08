"""`python -m maae_tf.evaluate_masks` (documented as `python -m maae_tf.data.masks.evaluate`): face
+ hair IoU of each mask source against CelebAMask-HQ label maps (maae_tf/data/masks/evaluate.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.data.masks import evaluate

flags.DEFINE_string("celebamask_hq", None, "Folder of N.jpg photos with N.png label maps.", required=True)
flags.DEFINE_string("sources", ",".join(evaluate.DEFAULT_SOURCES),
                    "Comma-separated mask sources (a source's options after ':' use '+' instead of ',').")
flags.DEFINE_enum("frame", "aligned", ["aligned", "native"], "Run the sources on the aligned 178x218 frame or "
                                                             "on the photo itself.")
flags.DEFINE_float("scale", 1.0, "The aligned frame at this fraction of 178x218 (0.5: the dev set's 89x109).")
flags.DEFINE_string("landmarks_file", None, "5-point landmarks per photo (N.jpg x1 y1 ... x5 y5); default dlib.")
flags.DEFINE_alias("landmarks", "landmarks_file")  # the spelling of earlier docs
flags.DEFINE_string("classes", "1-15", "Foreground classes of the label maps (default face + hair).")
flags.DEFINE_integer("repeats", 3, "Calls per source and photo for the timing.")
flags.DEFINE_string("out", None, "Write image | reference | prediction overlays into this folder.")
flags.DEFINE_alias("out_dir", "out")  # the spelling of earlier docs
flags.DEFINE_bool("fetch", False, "Download the segmentation model when not cached.")
FLAGS = flags.FLAGS


def main(argv):
    return evaluate.evaluate_command(FLAGS.celebamask_hq, FLAGS.sources, FLAGS.frame, FLAGS.landmarks_file,
                                     FLAGS.classes, FLAGS.repeats, FLAGS.out, FLAGS.fetch, FLAGS.scale)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
