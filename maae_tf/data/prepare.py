"""Prepares a CelebA release folder as sharded TFRecords (format: maae_tf/data/records.py, docs/data.md).

    python -m maae_tf.data.prepare --celeba_dir=DIR --out=DIR [--image_size=128] [--masks=SOURCE]
        [--workers=N] [--shard_size=1000]

Reads the release layout (img_align_celeba/, list_attr_celeba.txt, list_eval_partition.txt, and
identity_CelebA.txt / list_landmarks_align_celeba.txt when present). The images listed in
list_attr_celeba.txt, in sorted file-name order, go `--shard_size` at a time into shard k; one
worker process per shard (every core by default) reads each JPEG, crops it with the config's
relative crop, resizes it to --image_size (cv2 INTER_AREA), computes its background mask with the
`--masks` source (`maae_tf.data.masks.make_source`; "none": no masks) on the uncropped aligned image and
crops / resizes it the same way, and writes the record.

Resumable: a shard is written to `<name>.tmp` and renamed into place, then its sidecar
`<name>.json` (counts, failures, the label index) is written the same way; a rerun skips every
shard whose record file and sidecar both exist and agree (a damaged shard is written again),
and `manifest.json` (the sum of the sidecars) is written last, so a killed run leaves no file a
reader would take and a rerun gives the same shards and the same manifest. A rerun with other
settings (size, masks, shard size, crop, other input tables) into the same --out is refused.
One prepare at a time per --out: each holds an exclusive lock on `<out>/.prepare.lock` (released
when it ends, also when killed); a second one stops at once with exit 2. --out must be a new or
empty folder or an earlier preparation: an existing file, or a folder of other files, is refused
(exit 2, nothing written).

Failures: an image that is missing, truncated (no JPEG end marker) or undecodable is skipped and
listed by file name in the manifest's `failures` ({"file", "error"}); a mask the source cannot
give (MaskUnavailable) leaves the record without a mask, listed in `mask_unavailable`. Neither
stops the run (exit 0). Each record stores its mask's origin (`segmenter/dlib`,
`segmenter/template`, `files`, ... or `none`; `maae_tf.data.masks.mask_with_origin`), the manifest's
`per_mask_source` counts them and the run prints those counts. A missing --celeba_dir, a
malformed table or a bad --masks spec: a message and exit 2 before anything is written.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import re
import sys
import time

from maae_tf import progress
from maae_tf.config import base_config
from maae_tf.data import layout, records, shard_writer
from maae_tf.files import write_text_atomic

LOCK = ".prepare.lock"  # in --out: one prepare at a time (take_lock)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def default_crop() -> tuple[float, float, float, float]:
    """The crop of the default config (configs start from `base_config`)."""
    c = base_config()
    return (float(c.crop_top), float(c.crop_left), float(c.crop_height), float(c.crop_width))


def _tables_digest(celeba_dir: str) -> str:
    """A hash of the input tables: a rerun into the same --out must read the same ones."""
    h = hashlib.sha256()
    for name in (layout.ATTR_FILE, layout.PARTITION_FILE, layout.IDENTITY_FILE, layout.LANDMARK_FILE):
        path = os.path.join(celeba_dir, name)
        h.update(name.encode())
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def plan(celeba_dir: str, shard_size: int) -> list[list[tuple]]:
    """The shards: lists of (file, labels ±1, split, identity, landmarks or None), sorted by file."""
    filenames, labels = layout.read_attributes(celeba_dir)
    partition = layout.read_partition(celeba_dir)
    identities = layout.read_identities(celeba_dir)
    landmarks = layout.read_landmarks(celeba_dir)
    order = sorted(range(len(filenames)), key=lambda i: filenames[i])
    entries = [(filenames[i], [int(v) for v in labels[i]], partition.get(filenames[i], -1),
                identities.get(filenames[i], -1), landmarks.get(filenames[i])) for i in order]
    return [entries[k:k + shard_size] for k in range(0, len(entries), shard_size)]


# --------------------------------------------------------------------------------------------
# The run (parent side)
# --------------------------------------------------------------------------------------------


class _Progress:
    """The progress line on stderr: rewritten in place on a terminal, else one line every 5 s."""

    def __init__(self, total: int, skipped: int):
        self.skipped = skipped
        # the rate counts this run's images: the shards kept from an earlier run are done already
        self.tracker = progress.Tracker(total, start=skipped)
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        msg = f"prepare: images {self.tracker.line(self.skipped + done)}"
        if self.tty:
            sys.stderr.write("\r" + msg + ("\n" if final else ""))
        else:
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def _mp_context():
    # fresh interpreters once TensorFlow is loaded (its threads make fork unsafe)
    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def prepare(celeba_dir: str, out: str, size: int = 128, masks: str = "none", workers: int | None = None,
            shard_size: int = 1000, crop=None) -> dict:
    """Prepares `celeba_dir` into `out`; returns the manifest (also in out/manifest.json).

    Raises FileNotFoundError / ValueError (nothing written) for a bad input folder, --masks spec,
    settings that differ from an earlier run into the same `out`, or an `out` that is a file or a
    folder of other files; AlreadyRunning when another prepare holds `out`'s lock."""
    t0 = time.perf_counter()
    if size < 1 or shard_size < 1:
        raise ValueError("--image_size and --shard_size must be positive")
    layout.check_layout(celeba_dir)
    shard_writer.mask_source(masks, celeba_dir)  # a bad spec fails here, before anything is written
    fractions = tuple(float(v) for v in (crop or default_crop()))
    shards = plan(celeba_dir, int(shard_size))
    n = len(shards)
    params = {"format": records.FORMAT, "size": int(size), "masks": masks, "shard_size": int(shard_size),
              "crop": list(fractions), "num_shards": n, "tables_sha256": _tables_digest(celeba_dir)}
    params_path = os.path.join(out, records.PARAMS)
    if os.path.isfile(params_path):
        with open(params_path, encoding="utf-8") as f:
            old = json.load(f)
        if old != params:
            diff = ", ".join(f"{k}: {old.get(k)!r} -> {params.get(k)!r}" for k in sorted(set(old) | set(params))
                             if old.get(k) != params.get(k))
            raise ValueError(f"{out!r} holds a preparation with other settings ({diff}); use another --out")
    if os.path.realpath(out) == os.path.realpath(celeba_dir):
        raise ValueError("--out must be another folder than --celeba_dir")
    check_out(out)
    os.makedirs(out, exist_ok=True)
    lock = take_lock(out)
    try:
        return _prepare_locked(celeba_dir, out, size, masks, workers, shards, fractions, params, t0)
    finally:
        lock.close()  # releases the lock; the empty lock file stays (removing it would race a waiting run)


def _own_leftover(name: str) -> bool:
    """A file of an unfinished `prepare` (its lock, a killed run's .tmp or .tmp-<pid>): not the user's."""
    base = re.sub(r"\.tmp(-\d+)?$", "", name)
    return name == LOCK or (base != name and (base.startswith("shard-") or base in (records.MANIFEST, records.PARAMS)))


def check_out(out: str) -> None:
    """--out must be a new or empty folder, or one that holds a preparation (prepare.json,
    written first): never an existing file, nor a folder of other files (ValueError naming it)."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out={out} is an existing file, not a folder: give a new or empty folder")
    if os.path.isdir(out) and not os.path.isfile(os.path.join(out, records.PARAMS)):
        others = sorted(n for n in os.listdir(out) if not _own_leftover(n))
        if others:
            shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
            raise ValueError(f"--out={out} is a folder of other files ({shown}), not a preparation "
                             f"(no {records.PARAMS}): give a new or empty folder; nothing was written")


class AlreadyRunning(RuntimeError):
    """Another `prepare` holds the lock of the same --out."""


def take_lock(out: str):
    """An exclusive lock on `out`/.prepare.lock (fcntl.flock, released when the returned file is
    closed or the process ends, also by kill -9); AlreadyRunning when another prepare holds it."""
    path = os.path.join(out, LOCK)
    f = open(path, "a")  # noqa: SIM115  (held open for the whole run)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise AlreadyRunning(f"another prepare is writing into {out} (it holds {path}): wait for it to finish, "
                             "or give another --out") from None
    return f


def _prepare_locked(celeba_dir, out, size, masks, workers, shards, fractions, params, t0) -> dict:
    n = len(shards)
    params_path = os.path.join(out, records.PARAMS)
    for name in os.listdir(out):
        if name != LOCK and _own_leftover(name):
            # left by a killed run: never read, rewritten from scratch
            os.remove(os.path.join(out, name))
    if not os.path.isfile(params_path):
        write_text_atomic(params_path, json.dumps(params, indent=2, sort_keys=True) + "\n", sync=True)

    todo = [k for k in range(n) if not shard_writer.shard_done(out, k, n)]
    total = sum(len(s) for s in shards)
    skipped_images = total - sum(len(shards[k]) for k in todo)
    if len(todo) < n:
        print(f"prepare: {n - len(todo)} of {n} shard(s) already done, kept: "
              f"{_ranges([k for k in range(n) if k not in set(todo)])}", file=sys.stderr)
    workers = max(1, min(int(workers or os.cpu_count() or 1), max(1, len(todo))))
    tasks = [(k, n, shards[k], celeba_dir, out, int(size), fractions) for k in todo]
    progress = _Progress(total, skipped_images)
    if workers == 1:
        counter = multiprocessing.Value("q", 0)
        shard_writer.init_worker(counter, celeba_dir, masks)
        try:
            for i, task in enumerate(tasks):
                shard_writer.write_shard(task)
                if i + 1 < len(tasks):
                    progress.show(counter.value)
        finally:
            shard_writer.end_worker()
    elif tasks:
        ctx = _mp_context()
        counter = ctx.Value("q", 0)
        with ctx.Pool(workers, initializer=shard_writer.init_worker, initargs=(counter, celeba_dir, masks)) as pool:
            result = pool.map_async(shard_writer.write_shard, tasks, chunksize=1)
            while not result.ready():
                result.wait(0.5)
                progress.show(counter.value)
            result.get()  # re-raises a worker's unexpected error
    else:
        counter = multiprocessing.Value("q", 0)
    progress.show(counter.value, final=True)
    manifest = shard_writer.build_manifest(out, n, params)
    write_text_atomic(os.path.join(out, records.MANIFEST), json.dumps(manifest, indent=2) + "\n", sync=True)
    for f in manifest["failures"][:20]:
        print(f"prepare: FAILED {f['file']}: {f['error']}", file=sys.stderr)
    for f in manifest["mask_unavailable"][:20]:
        print(f"prepare: no mask for {f['file']}: {f['error']}", file=sys.stderr)
    hidden = max(0, len(manifest["failures"]) - 20) + max(0, len(manifest["mask_unavailable"]) - 20)
    if hidden:
        print(f"prepare: ... and {hidden} more, listed in {os.path.join(out, records.MANIFEST)}", file=sys.stderr)
    if masks != "none":
        print(f"prepare: masks: {mask_summary(manifest)}")
    wall = time.perf_counter() - t0
    done = counter.value
    print(f"prepare: {manifest['total']} records in {n} shard(s) in {out} ({len(todo)} shard(s) written, "
          f"{n - len(todo)} kept); {done} images processed in {wall:.1f} s ({done / max(wall, 1e-9):.0f} images/s "
          f"with {workers} worker(s)); {len(manifest['failures'])} failed, "
          f"{len(manifest['mask_unavailable'])} without a mask (see manifest.json)")
    return manifest


def mask_summary(manifest: dict) -> str:
    """One line of the manifest's per_mask_source: each origin's count and share, most first."""
    total = max(1, manifest["total"])
    counts = sorted(manifest["per_mask_source"].items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{origin} {n} ({100.0 * n / total:.2f} %)" for origin, n in counts)


def _ranges(ks: list[int]) -> str:
    out, i = [], 0
    while i < len(ks):
        j = i
        while j + 1 < len(ks) and ks[j + 1] == ks[j] + 1:
            j += 1
        out.append(str(ks[i]) if i == j else f"{ks[i]}-{ks[j]}")
        i = j + 1
    return ", ".join(out)


def prepare_command(celeba_dir: str, out: str, *args) -> None:
    """`python -m maae_tf.data.prepare`: `prepare(celeba_dir, out, *args)`; a bad input, or another
    prepare writing into `out`, ends in one `error:` line and exit 2."""
    if not celeba_dir or not out:
        print("error: --celeba_dir and --out are required", file=sys.stderr)
        sys.exit(2)
    try:
        prepare(celeba_dir, out, *args)
    except (FileNotFoundError, ValueError, AlreadyRunning) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":  # the documented `python -m maae_tf.data.prepare`: the command is maae_tf/prepare.py
    import runpy

    runpy.run_module("maae_tf.prepare", run_name="__main__", alter_sys=True)
