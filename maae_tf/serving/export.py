"""`python -m maae_tf.export`: training runs as a TF Serving SavedModel with a δ signature.

    python -m maae_tf.export --workdir=runs/mouth_open --out=models/mouth_open [--version=N]
    python -m maae_tf.export --workdirs=runs/mouth_open,runs/blond_hair --out=models/face_edit

Each run is rebuilt from its saved `config.json` and restored from its latest checkpoint, in
float32 whatever precision it trained in (the variables of a mixed-precision run are float32
already; the graph is rebuilt under the float32 policy, docs/stack.md). Several runs
compose sequentially, G_K(… G_2(G_1(x, δ_1), δ_2) …, δ_K): the paper's multi-attribute protocol
(§4.4, Table 2). The model is written to `OUT/.tmp-<version>-<pid>/` and renamed to
`OUT/<version>/` only when complete, so a server polling OUT (TF Serving ignores names that are not
integers) never loads half a model; an existing version is never overwritten.

The signatures are `maae_tf.model.editor.Editor`'s methods (that module's docstring).

Warm-up requests for TF Serving (one serving_default request at batch 1 and one at batch 8) are
written to `assets.extra/tf_serving_warmup_requests`.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

from absl import app, flags, logging

from maae_tf.model.editor import Editor, load_runs

FLAGS = flags.FLAGS

WARMUP_FILE = "tf_serving_warmup_requests"
INFO_FILE = "maae_export.json"


def next_version(base: str) -> int:
    """1 + the highest integer version folder in `base` (1 when there is none)."""
    versions = [int(n) for n in os.listdir(base) if n.isdigit()] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def write_savedmodel(editor: Editor, base: str, version: int | None = None, model_name: str = "maae") -> str:
    """Writes the editor's SavedModel to `base/<version>/` atomically; returns that path."""
    import tensorflow as tf

    version = next_version(base) if version is None else int(version)
    if version < 1:
        raise ValueError(f"version must be a positive integer, got {version}")
    final = os.path.join(base, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists: TF Serving versions are immutable, pick another --version "
                              f"(next free: {next_version(base)})")
    os.makedirs(base, exist_ok=True)
    tmp = os.path.join(base, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        editor.archive().write_out(tmp, verbose=False)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
            for log in editor.warmup_requests(model_name):
                writer.write(log.SerializeToString())
        with open(os.path.join(extra, INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(editor.info(), f, indent=2)
        os.rename(tmp, final)  # atomic on one filesystem; fails rather than replace a version
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export(workdirs, base: str, version: int | None = None) -> str:
    """Exports the runs in `workdirs` (one, or several composed in order) to `base/<version>/`."""
    models, configs, steps = load_runs(list(workdirs))
    editor = Editor(models, configs, steps)
    path = write_savedmodel(editor, base, version, model_name=os.path.basename(os.path.normpath(base)))
    logging.info("exported %s (steps %s) to %s", ", ".join(editor.attributes), editor.steps, path)
    return path


def define_flags() -> None:
    flags.DEFINE_string("workdir", None, "Training run to export (holds config.json and checkpoints/).")
    flags.DEFINE_list("workdirs", None, "Several runs, composed in this order into one model "
                                        "(delta [N, K]).")
    flags.DEFINE_string("out", None, "Base folder of the model; the export goes to OUT/<version>/.")
    flags.DEFINE_integer("version", None, "Version folder to write; default: the next free integer.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if bool(FLAGS.workdir) == bool(FLAGS.workdirs):
        raise app.UsageError("give exactly one of --workdir and --workdirs")
    if not FLAGS.out:
        raise app.UsageError("--out is required")
    try:
        path = export([FLAGS.workdir] if FLAGS.workdir else FLAGS.workdirs, FLAGS.out, FLAGS.version)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(path)


def run():
    define_flags()
    app.run(main)
