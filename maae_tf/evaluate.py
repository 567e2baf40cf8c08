"""`python -m maae_tf.evaluate`: evaluates trained runs on their test split (maae_tf/evaluation/evaluate.py)."""

from absl import flags

from maae_tf import config as config_lib
from maae_tf.evaluation import evaluate, identity

flags.DEFINE_string("workdir", None, "Training run folder (holds config.json and checkpoints/).")
flags.DEFINE_list("workdirs", None, "Several runs to evaluate and compare in one table (ablations).")
flags.DEFINE_list("compose", None, "Runs of different attributes: sequential multi-attribute edits with 1..K of "
                                   "them (paper Table 2).")
flags.DEFINE_string("out", None, "Folder of comparison.md / multi_attribute.md; default: beside the first run, "
                                 "<parent>/comparison or <parent>/multi_attribute.")
flags.DEFINE_integer("num_images", None, "Test images to evaluate; default config.eval.num_images.")
flags.DEFINE_integer("sweep_images", None, "Test images whose δ sweep is scored; default config.eval.sweep_images.")
flags.DEFINE_integer("seed", None, "Seed of the attribute classifier's training; default config.seed.")
flags.DEFINE_integer("num_examples", 8, "Rows of examples.png and sweep.png.")
flags.DEFINE_enum("identity_network", None, [*identity.EMBEDDERS, *identity.RENAMED],
                  "Face-recognition network of identity_similarity (training: the run's own F_ID; fid: its "
                  "deprecated name); default config.eval.identity_network.")
flags.DEFINE_bool("reuse", False, "--workdirs: reuse a run's eval/metrics.json when it is of the same checkpoint, "
                                  "image count, seed and identity network.")
flags.DEFINE_bool("lip_geometry", None, "Whether the mouth's judge adds the lips' geometry to its CNN (docs/method.md "
                                        "§7); default the run's config.eval.classifier_lip_geometry.")
FLAGS = flags.FLAGS


def main(argv):
    evaluate.evaluate_command(FLAGS.workdir, FLAGS.workdirs, FLAGS.compose, FLAGS.out, FLAGS.reuse,
                              FLAGS.identity_network, sweep_images=FLAGS.sweep_images, num_images=FLAGS.num_images,
                              seed=FLAGS.seed, num_examples=FLAGS.num_examples, lip_geometry=FLAGS.lip_geometry)


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
