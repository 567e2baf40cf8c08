"""The flags that `python -m maae_tf.edit` and `python -m maae_tf.demo` share: the model, how faces
are found and how outputs are written. Defined once here, so both commands' modules can be imported
into one process (the tests) without defining a flag twice."""

from absl import flags

flags.DEFINE_string("model", None, "SavedModel base or version folder, or a training workdir; with --server: the "
                                   "model's name there.")
flags.DEFINE_string("server", None, "TF Serving gRPC address HOST:8500 (edit remotely).")
flags.DEFINE_string("model_name", None, "Model name on the server (default: --model).")
flags.DEFINE_float("timeout", 30.0, "Server deadline per call, seconds.")
flags.DEFINE_enum("landmarks", "68", ["68", "5"], "dlib shape model: 68 points (aligns as CelebA did: eyes + "
                                                  "mouth) or 5 (eyes + nose base).")
flags.DEFINE_integer("min_face", 64, "Faces whose training crop is narrower than this (photo pixels) are not "
                                     "edited.")
flags.DEFINE_integer("quality", 95, "JPEG quality of the output.")
FLAGS = flags.FLAGS


def model_options() -> dict:
    """The shared flags' values, as keyword arguments of edit.Options and demo.Options."""
    return dict(model=FLAGS.model, server=FLAGS.server, model_name=FLAGS.model_name, timeout=FLAGS.timeout,
                landmarks=int(FLAGS.landmarks), min_face=FLAGS.min_face, quality=FLAGS.quality)
