"""`python -m maae_tf.demo`: a web page that edits a photo (maae_tf/photos/demo.py).

    python -m maae_tf.demo --model=export/mouth_open [--port=8765] [--bench [PHOTO]]
"""

from absl import app, flags

from maae_tf import config as config_lib
from maae_tf import photo_flags
from maae_tf.photos import demo

flags.DEFINE_string("rest", None, "TF Serving REST URL http://HOST:8501 as the backend.")
flags.DEFINE_string("host", "127.0.0.1", "Address to listen on (default 127.0.0.1: this machine only).")
flags.DEFINE_integer("port", demo.DEFAULT_PORT, "Port (0: a free one).")
flags.DEFINE_integer("preview", 1600, "Photos with a longer side are shown scaled to it (the download is full "
                                      "resolution).")
flags.DEFINE_bool("bench", False, "Measure slider moves over HTTP on the photo given after the flags (default: "
                                  "the built-in one-face example), print the figures and exit.")
flags.DEFINE_integer("bench_moves", 40, "Slider moves the benchmark times.")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and not FLAGS.bench):
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    bench = (argv[1] if len(argv) == 2 else "example") if FLAGS.bench else None
    return demo.serve(demo.Options(rest=FLAGS.rest, host=FLAGS.host, port=FLAGS.port, preview=FLAGS.preview,
                                   bench=bench, bench_moves=FLAGS.bench_moves, **photo_flags.model_options()))


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main, positional=True)  # --bench takes one photo


if __name__ == "__main__":
    run()
