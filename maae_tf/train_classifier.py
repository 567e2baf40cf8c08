"""`python -m maae_tf.train_classifier`: the dataset's attribute classifier as its own command.

    python -m maae_tf.train_classifier --data_dir=data/synthetic --image_size=64 --steps=600
    python -m maae_tf.train_classifier --workdir=runs/mouth_open --attrs=mouth_open   # that run's judge
    python -m maae_tf.train_classifier --data_dir=runs/dev64 --image_size=64 --split_protocol=paper \
        --attr=mouth_open --attrs=mouth_open              # the judge of a paper-protocol run on the dev set

Trains (or reuses, printing "reused") the classifier of a dataset, image size, crop and attribute
set that evaluations use (`maae_tf.evaluation.classifier.for_dataset`, evaluation protocol of docs/method.md
§7: an evaluation asks for its run's attribute alone, so `--attrs=<that attribute>` trains the
judge it will reuse), then prints the line that says what it trained and was tested on
(`classifier_data.split_note`: the official partition, or a held-out split of its own drawn by seed where
the folder has none, and the GAN's test images kept out under the paper protocol), the balanced
accuracy (mean of the accuracies on positives and on negatives) and the plain accuracy of each of
its attributes on its REAL held-out images, with the accuracies on positives and negatives and the
counts, the means over attributes, and the peers' reference for comparison; `<out>/report.md`
holds the same table.

Settings: from `--workdir`'s config.json (data_dir, image size, crop, seed, attr, split protocol,
eval.classifier_steps, eval.classifier_batch) when given, else from `maae_tf.config.base_config()`;
the flags given on the command line override either. Under `--split_protocol=paper` the run's test
images (`--split_test_per_attribute` of `--attr`, drawn by `--split_seed`, as the run draws them)
never train the classifier. The classifier is cached in
`classifier.default_dir(config, attrs)`; --out (default: that folder) only chooses where report.md goes.
`--attrs=all` (the default): every attribute of which the classifier's train split has both
positives and negatives (all 40 on CelebA), in one network.
A missing dataset, an unknown attribute or an empty split exits with status 2 ("error: ...").
"""

from __future__ import annotations

import os
import sys

from absl import flags

from maae_tf import config as config_lib
from maae_tf.evaluation import classifier
from maae_tf.files import write_text_atomic

PEERS_REFERENCE = "peers' reference: 94.5 % mean on CelebA's test split (40 attributes)"

flags.DEFINE_string("data_dir", None, "Dataset in the CelebA release layout (or a prepared TFRecord folder).")
flags.DEFINE_string("attrs", "all", "Comma-separated attributes (names or aliases), or 'all'.")
flags.DEFINE_integer("image_size", 128, "Image size S (the M-AAE runs' image_size).")
flags.DEFINE_integer("steps", 1500, "Training steps.")
flags.DEFINE_integer("batch", 32, "Images per step.")
flags.DEFINE_integer("seed", 0, "Seed of the initial weights, the shuffling and the flips.")
flags.DEFINE_float("width", 1.0, "Channel width factor of the classifier.")
flags.DEFINE_string("out", None, "Folder for report.md; default: the classifier's folder.")
flags.DEFINE_string("workdir", None, "A training run whose config.json gives the dataset and settings.")
flags.DEFINE_enum("split_protocol", "official", ["official", "paper"],
                  "The GAN run's protocol: 'paper' keeps its test images of --attr out of the classifier's training.")
flags.DEFINE_string("attr", "mouth_open", "The GAN run's attribute (its paper-protocol test images are kept out).")
flags.DEFINE_integer("split_test_per_attribute", 1000, "The GAN run's test images per attribute (paper protocol).")
flags.DEFINE_integer("split_seed", 0, "The GAN run's seed (config.seed), which draws its paper-protocol test images.")
flags.DEFINE_bool("lip_geometry", False, "Add the lips' geometry (dlib's 68 landmarks) to Mouth_Slightly_Open's "
                                         "judge, as configs/celeba64.py does (docs/method.md §7).")
FLAGS = flags.FLAGS


def settings():
    """(config, attrs or None for 'all', steps, batch, seed) from --workdir's config (the flags given
    override it) or from base_config and the flags."""
    if FLAGS.workdir:
        config = config_lib.load_workdir_config(FLAGS.workdir)
        steps, batch, seed = int(config.eval.classifier_steps), int(config.eval.classifier_batch), int(config.seed)
        given = lambda name: FLAGS[name].present
    else:
        config = config_lib.base_config()
        steps, batch, seed = FLAGS.steps, FLAGS.batch, FLAGS.seed
        given = lambda name: True
    if given("data_dir") and FLAGS.data_dir:
        config.data_dir = FLAGS.data_dir
    if given("image_size"):
        config.image_size = FLAGS.image_size
    for flag, key in (("split_protocol", "split_protocol"), ("attr", "attr"),
                      ("split_test_per_attribute", "split_test_per_attribute"), ("split_seed", "seed")):
        if given(flag):
            config[key] = FLAGS[flag].value
    if given("lip_geometry"):
        config.eval.classifier_lip_geometry = FLAGS.lip_geometry
    steps = FLAGS.steps if given("steps") else steps
    batch = FLAGS.batch if given("batch") else batch
    seed = FLAGS.seed if given("seed") else seed
    if not config.data_dir:
        raise ValueError("--data_dir (or --workdir) is required")
    if config.image_size < 32 or config.image_size % 32:
        raise ValueError(f"image_size must be a positive multiple of 32, got {config.image_size}")
    if steps < 1 or batch < 1 or FLAGS.width <= 0:
        raise ValueError("steps, batch and width must be positive")
    attrs = None if FLAGS.attrs.strip().lower() == "all" else [a for a in FLAGS.attrs.split(",") if a.strip()]
    return config, attrs, steps, batch, seed


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def table_rows(info: dict) -> list[tuple]:
    """(attribute, balanced accuracy, accuracy, on positives, on negatives, held-out images,
    positives) per attribute."""
    rows = []
    for name in info["attrs"]:
        d = info["test_details"][name]
        rows.append((name, _pct(d["balanced_accuracy"]), _pct(d["accuracy"]), _pct(d["accuracy_positives"]),
                     _pct(d["accuracy_negatives"]), str(d["num_images"]), str(d["num_positives"])))
    return rows


def network_lines(info: dict) -> list[str]:
    """What the CNN alone reads of the same held-out images, for each attribute whose judge adds
    the lips' geometry."""
    details = info.get("network_test_details") or {}
    return [f"{name}: the CNN alone {_pct(details[name]['balanced_accuracy'])} balanced accuracy, "
            f"with the lips' geometry {_pct(info['test_details'][name]['balanced_accuracy'])}"
            for name in info.get("terms") or {} if name in details]


HEADER = ("attribute", "balanced acc.", "accuracy", "on positives", "on negatives", "held-out images", "positives")


def report(info: dict, config, markdown: bool) -> str:
    """The split line, the per-attribute table, the means and the peers' reference, as plain text
    or markdown."""
    rows = table_rows(info)
    setting = (f"{os.path.abspath(config.data_dir)}, {info['image_size']} px, {info['steps']} steps of "
               f"{info['batch']}, seed {info['seed']}, width {info['width']:g}, trained in {info['train_seconds']:.0f} s")
    mean_line = (f"mean over {len(rows)} attributes: balanced accuracy {_pct(info['mean_test_balanced_accuracy'])}, "
                 f"accuracy {_pct(info['mean_test_accuracy'])}")
    if markdown:
        lines = ["# Attribute classifier", "", f"Held-out images of {setting}; weights `{info['path']}`.", "",
                 info["split_note"] + ".", "",
                 "| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines + ["", f"**{mean_line}**; {PEERS_REFERENCE}.", *network_lines(info), ""])
    widths = [max(len(x) for x in col) for col in zip(HEADER, *rows)]
    fmt = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w)
                              for i, (x, w) in enumerate(zip(r, widths)))
    lines = [info["split_note"], f"held-out images of {setting}", fmt(HEADER)] + [fmt(r) for r in rows]
    return "\n".join(lines + [mean_line, *network_lines(info), PEERS_REFERENCE])


def main(argv):
    try:
        config, attrs, steps, batch, seed = settings()
        _, info = classifier.for_dataset(config, attrs, steps=steps, batch=batch, seed=seed, width=FLAGS.width)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(("reused" if info["reused"] else f"trained in {info['train_seconds']:.1f} s")
          + f": {info['path']}")
    print(report(info, config, markdown=False))
    out = os.path.join(FLAGS.out or os.path.dirname(info["path"]), "report.md")
    write_text_atomic(out, report(info, config, markdown=True))
    print(f"wrote {out}")


def run():
    """The console script's entry point (setup.py)."""
    config_lib.run_command(main)


if __name__ == "__main__":
    run()
