"""`python -m maae_tf.export`: training runs as a TF Serving SavedModel with a δ signature.

    python -m maae_tf.export --workdir=runs/mouth_open [--out=export/mouth_open] [--version=N]
    python -m maae_tf.export --workdirs=runs/mouth_open,runs/blond_hair --out=export/face_edit

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
import time

from absl import logging

from maae_tf import attributes, progress
from maae_tf.config import load_workdir_config
from maae_tf.model.editor import Editor, load_runs


WARMUP_FILE = "tf_serving_warmup_requests"
INFO_FILE = "maae_export.json"
EXPORT_DIR = "export"  # the default base folders' parent, relative to the working directory


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
        t = time.perf_counter()
        archive = editor.archive()
        t = progress.phase("export", "traced the signatures", t)
        archive.write_out(tmp, verbose=False)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        with tf.io.TFRecordWriter(os.path.join(extra, WARMUP_FILE)) as writer:
            for log in editor.warmup_requests(model_name):
                writer.write(log.SerializeToString())
        with open(os.path.join(extra, INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(editor.info(), f, indent=2)
        os.rename(tmp, final)  # atomic on one filesystem; fails rather than replace a version
        progress.phase("export", "wrote the SavedModel and its warm-up requests", t)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def export(workdirs, base: str, version: int | None = None) -> str:
    """Exports the runs in `workdirs` (one, or several composed in order) to `base/<version>/`."""
    t = time.perf_counter()
    models, configs, steps = load_runs(list(workdirs))
    progress.phase("export", f"restored {len(models)} run(s) at step(s) {', '.join(map(str, steps))}", t)
    editor = Editor(models, configs, steps)
    path = write_savedmodel(editor, base, version, model_name=os.path.basename(os.path.normpath(base)))
    logging.info("exported %s (steps %s) to %s", ", ".join(editor.attributes), editor.steps, path)
    return path


def default_base(workdirs) -> str:
    """Where a model goes without --out: EXPORT_DIR/<attr> for one run (export/README.md); several
    runs compose into a model only the user can name."""
    if len(workdirs) != 1:
        raise ValueError("--workdirs composes a model: name its base folder with --out (e.g. export/face_edit)")
    return os.path.join(EXPORT_DIR, attributes.snake(load_workdir_config(workdirs[0]).attr))


def export_command(workdirs, out: str | None, version: int | None) -> None:
    """`python -m maae_tf.export`: exports `workdirs` to `out` (default: `default_base`) and prints
    the version folder; a bad input ends in one `error:` line and exit 2."""
    try:
        path = export(workdirs, out or default_base(workdirs), version)
    except (FileNotFoundError, FileExistsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(path)
