"""The worker side of `python -m maae_tf.data.prepare`: one image into one record, one shard of
records (and its sidecar) into its file, and the manifest summed from the sidecars. The record
format is `maae_tf.data.records`'; the run that hands out the shards is `maae_tf.data.prepare`'s.
"""

from __future__ import annotations

import json
import os
import sys

import cv2
import numpy as np
import tensorflow as tf

from maae_tf import attributes
from maae_tf.data import crop, layout, records, splits
from maae_tf.data.masks import MaskUnavailable, make_source, mask_with_origin
from maae_tf.files import write_text_atomic

JPEG_QUALITY = 95
_TAIL = 64  # where the JPEG end marker is looked for
SPLIT_NAMES = {0: "train", 1: "val", 2: "test", -1: "unassigned"}


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
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))


def _bytes(value: bytes):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def make_record(entry, celeba_dir: str, size: int, fractions, source) -> tuple[bytes, str, str | None]:
    """(serialized tf.train.Example, the mask's origin (`masks.mask_with_origin`) or "none", mask
    problem or None); ImageError on a bad image."""
    name, labels, split, identity, marks = entry
    rgb = read_jpeg(os.path.join(celeba_dir, layout.IMAGE_DIR, name))
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
        "key": _int64([splits.file_key(name)]),
        "file": _bytes(name.encode("utf-8")),
        "mask_source": _bytes(mask_source.encode("utf-8")),
    }
    example = tf.train.Example(features=tf.train.Features(feature=feature))
    # deterministic=True: the feature map in key order (by default the order of a protobuf map's
    # entries varies between processes, and shards must be byte-identical across runs)
    return example.SerializeToString(deterministic=True), mask_source, problem


_STATE: dict = {}


def mask_source(spec: str, celeba_dir: str):
    """The mask source `spec` names (`maae_tf.data.masks.make_source`); None for "none"."""
    return None if spec == "none" else make_source(spec, celeba_dir)


def init_worker(counter, celeba_dir, masks_spec):
    """Sets up a worker process: one OpenCV thread, the shared progress counter, the mask source."""
    cv2.setNumThreads(1)
    _STATE["counter"] = counter
    _STATE["source"] = mask_source(masks_spec, celeba_dir)


def end_worker():
    """Drops what `init_worker` set up (the single-process run shares the parent)."""
    _STATE.clear()


def write_shard(task) -> dict:
    """Writes one shard and its sidecar; returns the sidecar."""
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
    write_text_atomic(os.path.splitext(path)[0] + ".json", json.dumps(side, sort_keys=True) + "\n", sync=True)
    return side


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
