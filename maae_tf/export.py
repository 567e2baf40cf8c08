"""`python -m maae_tf.export`: exports training runs as a TF Serving SavedModel (maae_tf/serving/export.py)."""

from absl import app, flags

from maae_tf import config as config_lib
from maae_tf.serving import export

flags.DEFINE_string("workdir", None, "Training run to export (holds config.json and checkpoints/).")
flags.DEFINE_list("workdirs", None, "Several runs, composed in this order into one model (delta [N, K]).")
flags.DEFINE_string("out", None, "Base folder of the model; the export goes to OUT/<version>/. Default with "
                                 "--workdir: export/<attr>.")
flags.DEFINE_integer("version", None, "Version folder to write; default: the next free integer.")
FLAGS = flags.FLAGS


def main(argv):
    if bool(FLAGS.workdir) == bool(FLAGS.workdirs):
        raise app.UsageError("give exactly one of --workdir and --workdirs")
    export.export_command([FLAGS.workdir] if FLAGS.workdir else FLAGS.workdirs, FLAGS.out, FLAGS.version)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
