"""`python -m maae_tf.edit`: edits the faces in photos (maae_tf/photos/edit.py).

    python -m maae_tf.edit PHOTO [PHOTO ...] --model=BASE_OR_WORKDIR --delta=3 [-o OUT]
"""

from absl import flags

from maae_tf import config as config_lib
from maae_tf import photo_flags
from maae_tf.photos import edit, edit_options

flags.DEFINE_float("delta", None, "Edit strength for every attribute of the model not named by --attr.")
flags.DEFINE_multi_string("attr", [], "NAME=DELTA: strength of one attribute (CelebA name or alias: "
                                      "mouth_open=2); repeatable.")
flags.DEFINE_multi_integer("face", None, "Edit only face i (0-based, faces ordered left to right); repeatable; "
                                         "default all.")
flags.DEFINE_string("sweep", None, "LO:HI:N: also write a contact sheet per face of N strengths from LO to HI.")
flags.DEFINE_enum("format", "keep", ["keep", "png", "webp", "jpg"], "Output format (default: the input's); png "
                  "or webp (lossless) keep the pixels outside the face exact in the file too, JPEG does not.")
flags.DEFINE_string("out", "edited", "Output file (one photo) or folder (default ./edited); same name and format "
                                     "as the input; -o OUT for short.")
flags.DEFINE_bool("overwrite", False, "Allow an output to replace an input photo (refused by default).")
flags.DEFINE_bool("timings", False, "Print the time of each stage per photo.")
FLAGS = flags.FLAGS
SHORT = {"-o": "out"}


def options(photos: list[str]) -> edit_options.Options:
    """edit_options.Options of the parsed flags and the positional `photos`."""
    return edit_options.Options(photos=photos, delta=FLAGS.delta, attr=FLAGS.attr, face=FLAGS.face, sweep=FLAGS.sweep,
                                format=FLAGS.format, out=FLAGS.out, overwrite=FLAGS.overwrite, timings=FLAGS.timings,
                                **photo_flags.model_options())


def parse(argv: list[str]) -> edit_options.Options:
    """edit_options.Options of a whole command line (argv[0] the program), parsed afresh: for tests,
    which call edit.edit_photos with a detector of their own."""
    FLAGS.unparse_flags()
    return options(config_lib.parse_flags(config_lib.expand_short_flags(argv, SHORT))[1:])


def main(argv):
    return edit.edit_photos(options(argv[1:]))


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main, short=SHORT, positional=True)


if __name__ == "__main__":
    run()
