"""A procedural synthetic face set written in the exact CelebA release layout.

Every code path that reads CelebA runs on it without the real data, and a small GAN learns its
attribute edits in minutes on a CPU. `python -m maae_tf.data.synthetic --out DIR --num_images N
[--seed S] [--workers W]`, or from Python `build(out_dir, num, seed, workers)` /
`ensure(out_dir, num, seed)`.

Files in DIR (CelebA's names and formats):
  img_align_celeba/000001.jpg ...      178x218 RGB JPEG (quality 95), the aligned-image geometry
  list_attr_celeba.txt                 count, the 40 names, rows `000001.jpg -1  1 ...`
  list_eval_partition.txt              `000001.jpg 0`: 0 train / 1 val / 2 test (~80/10/10)
  identity_CelebA.txt                  `000001.jpg 17`: 1-based identity ids (~num/8 of them)
  list_landmarks_align_celeba.txt      count, 10 column names, the drawn eye/nose/mouth points
  background_masks/000001.png          uint8 178x218: 255 background, 0 foreground (face skin,
                                       ears, eyes, brows, nose, mouth, hair, glasses; neck and
                                       clothes are background, as in CelebAMask-HQ)
  synthetic_info.json                  {num, seed, version}: marks the folder as a synthetic set

The faces (what is drawn, how, and the labels they get): `maae_tf.data.synthetic_faces`.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import os
import shutil
import sys
import time

import cv2
import numpy as np
from absl import logging

from maae_tf import attributes
from maae_tf.data import synthetic_faces
from maae_tf.data.layout import ATTR_FILE, IDENTITY_FILE, IMAGE_DIR, LANDMARK_FILE, MASK_DIR, PARTITION_FILE

VERSION = 1
INFO_FILE = "synthetic_info.json"
LANDMARK_NAMES = ("lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
                  "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y")


# --------------------------------------------------------------------------------------------
# writing


def _name(i: int) -> str:
    return f"{i:06d}"


def _work(task):
    seed, i, k, out = task
    rgb, mask, labels, marks, part = synthetic_faces.render(seed, i, _identity_cached(seed, k))
    ok1, jpg = cv2.imencode(".jpg", np.ascontiguousarray(rgb[..., ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, 95])
    ok2, png = cv2.imencode(".png", mask)
    if not (ok1 and ok2):
        raise RuntimeError(f"could not encode image {i}")
    with open(os.path.join(out, IMAGE_DIR, _name(i) + ".jpg"), "wb") as f:
        f.write(jpg.tobytes())
    with open(os.path.join(out, MASK_DIR, _name(i) + ".png"), "wb") as f:
        f.write(png.tobytes())
    return i, [labels[n] for n in attributes.CELEBA_ATTRIBUTES], marks, part, k


_IDENTITIES: dict = {}


def _identity_cached(seed: int, k: int) -> dict:
    key = (seed, k)
    if key not in _IDENTITIES:
        if len(_IDENTITIES) > 4096:
            _IDENTITIES.clear()
        _IDENTITIES[key] = synthetic_faces.identity_params(seed, k)
    return _IDENTITIES[key]


def _init_worker():
    cv2.setNumThreads(1)


def _mp_context():
    # fork is fast and safe while TensorFlow is not loaded; once it is (a training run building
    # its data on first use), its threads make fork unsafe, so start fresh interpreters.
    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    return multiprocessing.get_context("fork")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp(out_dir: str) -> None:
    for path in glob.glob(glob.escape(out_dir) + ".tmp-*"):
        suffix = path.rsplit(".tmp-", 1)[1]
        if suffix.isdigit() and int(suffix) != os.getpid() and not _pid_alive(int(suffix)):
            logging.info("synthetic: removing %s, left by a killed build", path)
            shutil.rmtree(path, ignore_errors=True)


def _write_tables(tmp: str, num: int, rows: list) -> None:
    names = attributes.CELEBA_ATTRIBUTES
    with open(os.path.join(tmp, ATTR_FILE), "w", encoding="ascii") as f:
        f.write(f"{num}\n{' '.join(names)}\n")
        for i, attrs, _, _, _ in rows:
            f.write(f"{_name(i)}.jpg " + " ".join(f"{v:2d}" for v in attrs) + "\n")
    with open(os.path.join(tmp, PARTITION_FILE), "w", encoding="ascii") as f:
        for i, _, _, part, _ in rows:
            f.write(f"{_name(i)}.jpg {part}\n")
    with open(os.path.join(tmp, IDENTITY_FILE), "w", encoding="ascii") as f:
        for i, _, _, _, k in rows:
            f.write(f"{_name(i)}.jpg {k}\n")
    with open(os.path.join(tmp, LANDMARK_FILE), "w", encoding="ascii") as f:
        f.write(f"{num}\n{' '.join(LANDMARK_NAMES)}\n")
        for i, _, marks, _, _ in rows:
            f.write(f"{_name(i)}.jpg " + " ".join(f"{v:4d}" for v in marks) + "\n")


def build(out_dir: str, num: int, seed: int = 0, workers: int | None = None) -> str:
    """Writes `num` synthetic images and CelebA's tables into `out_dir`; returns its absolute path.

    Builds into `out_dir.tmp-<pid>` and renames it into place, so a killed build never leaves a
    set that looks complete. An existing synthetic set at `out_dir` (it has synthetic_info.json)
    or an empty folder is replaced; any other existing folder raises FileExistsError.
    """
    num, seed = int(num), int(seed)
    if num < 1:
        raise ValueError(f"num must be >= 1, got {num}")
    out_dir = os.path.abspath(out_dir)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not os.path.exists(
            os.path.join(out_dir, INFO_FILE)):
        raise FileExistsError(f"{out_dir} exists and is not a synthetic set; not overwriting it")
    os.makedirs(os.path.dirname(out_dir), exist_ok=True)
    _remove_stale_tmp(out_dir)
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.join(tmp, IMAGE_DIR))
    os.makedirs(os.path.join(tmp, MASK_DIR))
    workers = max(1, min(int(workers or os.cpu_count() or 1), num))
    ids = synthetic_faces.identity_assignment(num, seed)
    tasks = [(seed, i, int(ids[i - 1]), tmp) for i in range(1, num + 1)]
    logging.info("synthetic: building %d images (%d identities, seed %d) into %s with %d "
                 "worker(s)", num, int(ids.max()), seed, out_dir, workers)
    start = last = time.time()
    rows = []
    try:
        if workers == 1:
            threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            try:
                results = map(_work, tasks)
                for row in results:
                    rows.append(row)
                    last = _progress(len(rows), num, start, last)
            finally:
                cv2.setNumThreads(threads)
        else:
            chunk = max(1, min(32, num // (workers * 4)))
            with _mp_context().Pool(workers, initializer=_init_worker) as pool:
                for row in pool.imap(_work, tasks, chunksize=chunk):
                    rows.append(row)
                    last = _progress(len(rows), num, start, last)
        _write_tables(tmp, num, rows)
        with open(os.path.join(tmp, INFO_FILE), "w", encoding="ascii") as f:
            json.dump({"num": num, "seed": seed, "version": VERSION}, f)
            f.write("\n")
        _move_into_place(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.time() - start
    logging.info("synthetic: wrote %d images to %s in %.1f s (%.0f images/s)", num, out_dir,
                 elapsed, num / max(elapsed, 1e-9))
    return out_dir


def _progress(done: int, num: int, start: float, last: float) -> float:
    now = time.time()
    if now - last >= 2.0 or done == num:
        logging.info("synthetic: %d/%d images (%.0f images/s)", done, num,
                     done / max(now - start, 1e-9))
        return now
    return last


def _move_into_place(tmp: str, out_dir: str) -> None:
    old = None
    if os.path.isdir(out_dir):
        if os.listdir(out_dir):  # a previous synthetic set: swap it out, then delete it
            old = f"{out_dir}.old-{os.getpid()}"
            os.replace(out_dir, old)
        else:
            os.rmdir(out_dir)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if os.path.exists(os.path.join(out_dir, ATTR_FILE)):  # a concurrent build won
            logging.info("synthetic: %s was completed by another process", out_dir)
        else:
            raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def ensure(out_dir: str, num: int, seed: int = 0) -> str:
    """Builds the set unless `out_dir/list_attr_celeba.txt` exists; returns the absolute path."""
    out_dir = os.path.abspath(out_dir)
    if os.path.exists(os.path.join(out_dir, ATTR_FILE)):
        info_path = os.path.join(out_dir, INFO_FILE)
        info = {}
        if os.path.exists(info_path):
            with open(info_path, encoding="ascii") as f:
                info = json.load(f)
        if info and (info.get("num"), info.get("seed")) != (int(num), int(seed)):
            logging.warning("synthetic: %s holds %s images with seed %s (asked for %d, seed %d); "
                            "using it as it is", out_dir, info.get("num"), info.get("seed"),
                            num, seed)
        else:
            logging.info("synthetic: %s already exists; not rebuilding", out_dir)
        return out_dir
    logging.info("synthetic: %s not found; building it", os.path.join(out_dir, ATTR_FILE))
    return build(out_dir, num, seed)


if __name__ == "__main__":  # the documented `python -m maae_tf.data.synthetic`: the command is maae_tf/synthetic.py
    import runpy

    runpy.run_module("maae_tf.synthetic", run_name="__main__", alter_sys=True)
