"""`python -m maae_tf.client` (documented as `python -m maae_tf.serving.client`): edits face crops
through TF Serving, over gRPC or REST (maae_tf/serving/client.py).

    python -m maae_tf.serving.client --server=HOST:8500 --model=mouth_open --delta=3 in.jpg -o out.jpg
"""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.serving import client

flags.DEFINE_string("server", None, "gRPC address of TF Serving, HOST:8500.")
flags.DEFINE_string("rest", None, "REST base URL of TF Serving, http://HOST:8501.")
flags.mark_flags_as_mutual_exclusive(["server", "rest"], required=True)
flags.DEFINE_string("model", None, "Model name in the server's config.", required=True)
flags.DEFINE_integer("version", None, "Model version (default: the latest served).")
flags.DEFINE_string("label", None, "Version label from the server's models.config.")
flags.DEFINE_string("delta", "0", "Edit strength; K comma-separated values for a K-attribute model.")
flags.DEFINE_string("signature", "serving_default", "serving_default, or edit_detail to keep the photo's resolution.")
flags.DEFINE_bool("status", False, "Print the model's version status and exit.")
flags.DEFINE_float("timeout", 30.0, "Deadline per call, seconds.")
flags.DEFINE_integer("retries", 3, "Retries while the server is UNAVAILABLE.")
flags.DEFINE_string("out", None, "Output file (one input) or folder (several); -o OUT for short.")
FLAGS = flags.FLAGS


def main(argv):
    return client.client_command(FLAGS.server, FLAGS.rest, FLAGS.model, FLAGS.delta, argv[1:], FLAGS.out,
                                 FLAGS.status, FLAGS.signature, version=FLAGS.version, label=FLAGS.label,
                                 timeout=FLAGS.timeout, retries=FLAGS.retries)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main, short={"-o": "out"}, positional=True)


if __name__ == "__main__":
    run()
