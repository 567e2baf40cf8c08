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

import json
import multiprocessing
import os
import sys
import time

import cv2
import numpy as np

from maae_tf import attributes
from maae_tf.data import crop, records

IMAGE_DIR = "img_align_celeba"
LANDMARK_FILE = "list_landmarks_align_celeba.txt"
JPEG_QUALITY = 95
_TAIL = 64
SPLIT_NAMES = {0: "train", 1: "val", 2: "test", -1: "unassigned"}
LOCK = ".prepare.lock"  # in --out: one prepare at a time (take_lock)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def default_crop() -> tuple[float, float, float, float]:
    from maae_tf.config import base_config

    c = base_config()
    return (float(c.crop_top), float(c.crop_left), float(c.crop_height), float(c.crop_width))


def read_landmarks(celeba_dir: str) -> dict[str, list[float]]:
    """{file: [x1, y1, ..., x5, y5]} from list_landmarks_align_celeba.txt; {} when absent."""
    path = os.path.join(celeba_dir, LANDMARK_FILE)
    if not os.path.isfile(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    for lineno, line in enumerate(lines[2:], start=3):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 11:
            raise ValueError(f"{path}, line {lineno}: expected a file name and 10 coordinates, got {line[:80]!r}")
        try:
            out[parts[0]] = [float(v) for v in parts[1:]]
        except ValueError:
            raise ValueError(f"{path}, line {lineno}: coordinates must be numbers, got {line[:80]!r}") from None
    return out


def _tables_digest(celeba_dir: str) -> str:
    import hashlib

    from maae_tf.data import celeba

    h = hashlib.sha256()
    for name in (celeba.ATTR_FILE, celeba.PARTITION_FILE, celeba.IDENTITY_FILE, LANDMARK_FILE):
        path = os.path.join(celeba_dir, name)
        h.update(name.encode())
        if os.path.isfile(path):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


def plan(celeba_dir: str, shard_size: int) -> list[list[tuple]]:
    """The shards: lists of (file, labels ±1, split, identity, landmarks or None), sorted by file."""
    from maae_tf.data import celeba

    filenames, labels = celeba.read_attributes(celeba_dir)
    partition = celeba.read_partition(celeba_dir)
    identities = celeba.read_identities(celeba_dir)
    landmarks = read_landmarks(celeba_dir)
    order = sorted(range(len(filenames)), key=lambda i: filenames[i])
    entries = [(filenames[i], [int(v) for v in labels[i]], partition.get(filenames[i], -1),
                identities.get(filenames[i], -1), landmarks.get(filenames[i])) for i in order]
    return [entries[k:k + shard_size] for k in range(0, len(entries), shard_size)]


# --------------------------------------------------------------------------------------------
# One image, one shard (worker side)
# --------------------------------------------------------------------------------------------


class ImageError(Exception):
    pass


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    shrink = min(a.shape[:2]) >= size
    return cv2.resize(a, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def read_jpeg(path: str) -> np.ndarray:
    """RGB uint8; ImageError saying what is wrong (missing, truncated, not decodable)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ImageError("missing: no such file") from None
    except OSError as e:
        raise ImageError(f"unreadable: {e.strerror or e}") from None
    if not data:
        raise ImageError("corrupt JPEG: empty file")
    if not data.startswith(b"\xff\xd8\xff"):
        raise ImageError("corrupt JPEG: no start marker FFD8FF (not a JPEG)")
    if b"\xff\xd9" not in data[-_TAIL:]:
        raise ImageError(f"corrupt JPEG: no end marker FFD9 (truncated, {len(data)} bytes)")
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ImageError("corrupt JPEG: the decoder rejected it")
    return np.ascontiguousarray(bgr[..., ::-1])


def _int64(values):
    import tensorflow as tf

    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _bytes(value: bytes):
    import tensorflow as tf

    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def make_record(entry, celeba_dir: str, size: int, fractions, source) -> tuple[bytes, str, str | None]:
    """(serialized tf.train.Example, the mask's origin (`masks.mask_with_origin`) or "none", mask
    problem or None); ImageError on a bad image."""
    import tensorflow as tf

    from maae_tf.data.masks import MaskUnavailable, mask_with_origin

    name, labels, split, identity, marks = entry
    rgb = read_jpeg(os.path.join(celeba_dir, IMAGE_DIR, name))
    h, w = rgb.shape[:2]
    top, left, ch, cw = crop.window(h, w, fractions)
    image = _resize(rgb[top:top + ch, left:left + cw], size)
    ok, jpeg = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ImageError("could not encode the cropped image")
    mask_bytes, mask_source, problem = b"", "none", None
    if source is not None:
        lm = None if marks is None else np.asarray(marks, np.float32).reshape(5, 2)
        try:
            mask, origin = mask_with_origin(source, rgb, name=name, landmarks=lm)
            mask = _resize(np.ascontiguousarray(mask[top:top + ch, left:left + cw]), size)
            mask_bytes = cv2.imencode(".png", mask)[1].tobytes()
            mask_source = origin
        except MaskUnavailable as e:
            problem = str(e)
    feature = {
        "image": _bytes(jpeg.tobytes()),
        "mask": _bytes(mask_bytes),
        "labels": _int64(1 if v > 0 else 0 for v in labels),
        "identity": _int64([identity]),
        "split": _int64([split]),
        "key": _int64([records.file_key(name)]),
        "file": _bytes(name.encode("utf-8")),
        "mask_source": _bytes(mask_source.encode("utf-8")),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # deterministic=True: the feature map in key order (by default the order of a protobuf map's
    # entries varies between processes, and shards must be byte-identical across runs)
    return example.SerializeToString(deterministic=True), mask_source, problem


_STATE: dict = {}


def _init_worker(counter, celeba_dir, masks_spec):
    cv2.setNumThreads(1)
    _STATE["counter"] = counter
    _STATE["source"] = _make_source(masks_spec, celeba_dir)


def _make_source(spec: str, celeba_dir: str):
    if spec == "none":
        return None
    from maae_tf.data.masks import make_source

    return make_source(spec, celeba_dir)


def _write_atomic(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(task) -> dict:
    """Writes one shard and its sidecar; returns the sidecar."""
    import tensorflow as tf

    k, n, entries, celeba_dir, out, size, fractions = task
    source = _STATE.get("source")
    counter = _STATE.get("counter")
    path = os.path.join(out, records.shard_name(k, n))
    side = {"shard": records.shard_name(k, n), "listed": len(entries), "records": 0,
            "per_split": {}, "positives": [0] * records.NUM_ATTRS, "per_mask_source": {},
            "failures": [], "mask_unavailable": [], "index": {"files": [], "labels": [], "split": []}}
    pending = 0
    with tf.io.TFRecordWriter(path + ".tmp") as writer:
        for entry in entries:
            name, labels, split = entry[0], entry[1], entry[2]
            try:
                data, mask_source, problem = make_record(entry, celeba_dir, size, fractions, source)
            except ImageError as e:
                side["failures"].append({"file": name, "error": str(e)})
            else:
                writer.write(data)
                side["records"] += 1
                s = SPLIT_NAMES[split]
                side["per_split"][s] = side["per_split"].get(s, 0) + 1
                side["per_mask_source"][mask_source] = side["per_mask_source"].get(mask_source, 0) + 1
                bits = "".join("1" if v > 0 else "0" for v in labels)
                side["positives"] = [p + (b == "1") for p, b in zip(side["positives"], bits)]
                if problem:
                    side["mask_unavailable"].append({"file": name, "error": problem})
                side["index"]["files"].append(name)
                side["index"]["labels"].append(bits)
                side["index"]["split"].append(split)
            pending += 1
            if counter is not None and pending >= 16:
                with counter.get_lock():
                    counter.value += pending
                pending = 0
    if counter is not None and pending:
        with counter.get_lock():
            counter.value += pending
    with open(path + ".tmp", "rb+") as f:
        os.fsync(f.fileno())
    os.replace(path + ".tmp", path)
    _write_atomic(os.path.splitext(path)[0] + ".json", json.dumps(side, sort_keys=True) + "\n")
    return side


# --------------------------------------------------------------------------------------------
# The run (parent side)
# --------------------------------------------------------------------------------------------


def shard_done(out: str, k: int, n: int) -> bool:
    """Shard k's record file and sidecar both exist and the file holds the sidecar's record count
    whole (a shard damaged since, e.g. by a half copy, is written again)."""
    path = os.path.join(out, records.shard_name(k, n))
    side = os.path.splitext(path)[0] + ".json"
    if not (os.path.isfile(path) and os.path.isfile(side)):
        return False
    try:
        with open(side, encoding="utf-8") as f:
            expected = int(json.load(f)["records"])
    except (OSError, ValueError, KeyError, TypeError):
        problem = f"its sidecar {os.path.basename(side)} is unreadable"
    else:
        problem = records.shard_problem(path, expected)
    if problem:
        print(f"prepare: {path} is damaged ({problem}): writing it again", file=sys.stderr)
    return problem is None


def build_manifest(out: str, n: int, params: dict) -> dict:
    sides = []
    for k in range(n):
        with open(os.path.join(out, records.shard_name(k, n, "json")), encoding="utf-8") as f:
            sides.append(json.load(f))
    per_split = {s: 0 for s in ("train", "val", "test")}
    per_mask: dict[str, int] = {}
    positives = [0] * records.NUM_ATTRS
    for s in sides:
        for key, v in s["per_split"].items():
            per_split[key] = per_split.get(key, 0) + v
        for key, v in s["per_mask_source"].items():
            per_mask[key] = per_mask.get(key, 0) + v
        positives = [a + b for a, b in zip(positives, s["positives"])]
    total = sum(s["records"] for s in sides)
    return {
        "format": records.FORMAT,
        "total": total,
        "listed": sum(s["listed"] for s in sides),
        "per_split": per_split,
        "per_attribute": {name: {"positive": p, "negative": total - p}
                          for name, p in zip(attributes.CELEBA_ATTRIBUTES, positives)},
        "per_mask_source": dict(sorted(per_mask.items())),
        "failures": [f for s in sides for f in s["failures"]],
        "mask_unavailable": [f for s in sides for f in s["mask_unavailable"]],
        "num_shards": n,
        "shards": [s["shard"] for s in sides],
        "shard_records": [s["records"] for s in sides],
        "size": params["size"],
        "crop": params["crop"],
        "masks": params["masks"],
        "shard_size": params["shard_size"],
        "label_encoding": "labels int64[40] in attributes.CELEBA_ATTRIBUTES order, 0/1 (CelebA -1 -> 0, 1 -> 1)",
        "split_encoding": "split int64: 0 train, 1 val, 2 test (list_eval_partition.txt), -1 not listed there",
    }


class _Progress:
    def __init__(self, total: int, skipped: int):
        self.total, self.skipped = total, skipped
        self.start = time.perf_counter()
        self.tty = sys.stderr.isatty()
        self.last = 0.0

    def show(self, done: int, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self.last < (0.5 if self.tty else 5.0):
            return
        self.last = now
        elapsed = now - self.start
        rate = done / elapsed if elapsed > 0 else 0.0
        left = self.total - self.skipped - done
        eta = f"{left / rate:.0f} s" if rate > 0 else "?"
        msg = (f"prepare: {self.skipped + done}/{self.total} images "
               f"({100.0 * (self.skipped + done) / max(1, self.total):.1f}%), {rate:.0f} images/s, ETA {eta}")
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
    from maae_tf.data import celeba

    t0 = time.perf_counter()
    if size < 1 or shard_size < 1:
        raise ValueError("--image_size and --shard_size must be positive")
    celeba.check_layout(celeba_dir)
    _make_source(masks, celeba_dir)  # a bad spec fails here, before anything is written
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
    """A file of an unfinished `prepare` (its lock, a killed run's .tmp): not the user's."""
    return name == LOCK or (name.endswith(".tmp") and (name.startswith("shard-") or name in (
        records.MANIFEST + ".tmp", records.PARAMS + ".tmp")))


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
    import fcntl

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
        _write_atomic(params_path, json.dumps(params, indent=2, sort_keys=True) + "\n")

    todo = [k for k in range(n) if not shard_done(out, k, n)]
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
        _init_worker(counter, celeba_dir, masks)
        try:
            for i, task in enumerate(tasks):
                write_shard(task)
                if i + 1 < len(tasks):
                    progress.show(counter.value)
        finally:
            _STATE.clear()
    elif tasks:
        ctx = _mp_context()
        counter = ctx.Value("q", 0)
        with ctx.Pool(workers, initializer=_init_worker, initargs=(counter, celeba_dir, masks)) as pool:
            result = pool.map_async(write_shard, tasks, chunksize=1)
            while not result.ready():
                result.wait(0.5)
                progress.show(counter.value)
            result.get()  # re-raises a worker's unexpected error
    else:
        counter = multiprocessing.Value("q", 0)
    progress.show(counter.value, final=True)
    manifest = build_manifest(out, n, params)
    _write_atomic(os.path.join(out, records.MANIFEST), json.dumps(manifest, indent=2) + "\n")
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
