"""The model that edits the faces of photos, for `edit` and the demo: an export or a training
workdir run in this process (`LocalModel`), or a model behind TF Serving (`ServedModel`); both
give the model's metadata (attributes, δ range, image size, crop) and its `edit_detail`.

--model is a SavedModel base folder (highest version), one version folder (saved_model.pb) or a
training workdir (config.json). With --server or --rest, it is TF Serving's model NAME:
--model_name if given, else --model.
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

# The exit codes of `edit` and `demo`: bad arguments or input, a model or server that failed.
EXIT_BAD_INPUT, EXIT_MODEL = 2, 1


class ModelError(Exception):
    """The model did not load or the server did not answer (exit EXIT_MODEL)."""


def version_dir(base: str) -> str:
    """The SavedModel folder `base` names: itself (saved_model.pb) or its highest integer version."""
    if os.path.isfile(os.path.join(base, "saved_model.pb")):
        return base
    versions = [int(n) for n in os.listdir(base) if n.isdigit() and os.path.isdir(os.path.join(base, n))]
    if not versions:
        raise ValueError(f"{base}: not a workdir (no config.json), a SavedModel (no saved_model.pb) "
                         f"or a model base (no integer version folders)")
    return os.path.join(base, str(max(versions)))


class LocalModel:
    """An exported SavedModel or a training workdir, run in this process."""

    def __init__(self, path: str):
        import tensorflow as tf

        self.tf = tf
        if not os.path.isdir(path):
            raise ValueError(f"{path}: no such model folder")
        if os.path.isfile(os.path.join(path, "config.json")):
            from maae_tf.model.editor import Editor, load_runs

            self.source = f"workdir {path}"
            editor = Editor(*load_runs([path]))
            self._edit = lambda x, d: editor.edit_detail(tf.constant(x), tf.constant(d))["images"].numpy()
            meta = {k: v.numpy() for k, v in editor.metadata().items()}
        else:
            version = version_dir(path)
            self.source = f"SavedModel {version}"
            self._loaded = tf.saved_model.load(version)
            sig = self._loaded.signatures["edit_detail"]
            self._edit = lambda x, d: sig(images=tf.constant(x), delta=tf.constant(d))["images"].numpy()
            meta = {k: v.numpy() for k, v in self._loaded.signatures["metadata"]().items()}
        self.attributes = [a.decode() if isinstance(a, bytes) else str(a) for a in np.ravel(meta["attributes"])]
        self.delta_max = np.ravel(meta["delta_max"]).astype(float).tolist()
        self.image_size = int(meta["image_size"])
        self.crop = np.ravel(meta["crop"]).astype(float).tolist()

    def edit(self, crops: np.ndarray, delta: np.ndarray) -> np.ndarray:
        """edit_detail of uint8 [N, s, s, 3] crops with δ [N, K]."""
        d = delta[:, 0] if len(self.attributes) == 1 else delta
        return self._edit(crops, d.astype(np.float32))


class ServedModel:
    """A model behind TF Serving, through maae_tf.serving.client: gRPC at `server` (HOST:8500),
    or its REST API when `rest` (`server` is then a URL, http://HOST:8501)."""

    def __init__(self, server: str, name: str, timeout: float = 30.0, rest: bool = False):
        from maae_tf.serving.client import Client, RestClient

        self.source = f"model {name!r} at {server}"
        self.client = (RestClient if rest else Client)(server, name, timeout=timeout)
        meta = self.client.metadata()
        self.attributes, self.delta_max = meta["attributes"], meta["delta_max"]
        self.image_size, self.crop = meta["image_size"], meta["crop"]

    def edit(self, crops: np.ndarray, delta: np.ndarray) -> np.ndarray:
        d = delta[:, 0] if len(self.attributes) == 1 else delta
        return self.client.edit(crops, d, signature="edit_detail")


def load_model(args):
    """The LocalModel or ServedModel the arguments name (--server: gRPC; --rest, where the command
    has it: TF Serving's REST API)."""
    if args.server:
        return ServedModel(args.server, args.model_name or args.model, args.timeout)
    if args.rest:
        return ServedModel(args.rest, args.model_name or args.model, args.timeout, rest=True)
    return LocalModel(args.model)


def warm_up(model) -> None:
    """One call before the photos: loads and warms the graph, so per-photo times are steady; and
    RuntimeError for a model whose edit_detail does not give back an image of its size."""
    warm = model.edit(np.zeros((1, model.image_size, model.image_size, 3), np.uint8),
                      np.zeros((1, len(model.attributes)), np.float32))
    if warm.shape != (1, model.image_size, model.image_size, 3):
        raise RuntimeError(f"{model.source}: edit_detail returned shape {warm.shape} for a "
                           f"{model.image_size}² image; is this a maae_tf export?")


def open_model(args, log=print, check=None):
    """The model the arguments name, loaded (`load_model`), checked by `check(model)` (the
    command's own checks against the model's metadata, before any model call) and warmed up
    (`warm_up`); logs where it came from and how long it took. Raises ValueError for arguments
    that name no model or that `check` refuses, ModelError for a model or server that fails."""
    start = time.perf_counter()
    try:
        model = load_model(args)
        if check is not None:
            check(model)
        warm_up(model)
    except ValueError:
        raise
    except Exception as e:  # a model that does not load or a server that does not answer
        raise ModelError(f"{type(e).__name__}: {e}") from None
    log(f"model: {model.source} ({', '.join(model.attributes)}; {model.image_size} px; loaded in "
        f"{time.perf_counter() - start:.1f} s)")
    return model


def failure(error: Exception) -> int:
    """Reports an error that stops a command (one `error:` line on stderr) and returns its exit
    code: EXIT_MODEL for a ModelError, EXIT_BAD_INPUT for anything else (the arguments, dlib)."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_MODEL if isinstance(error, ModelError) else EXIT_BAD_INPUT
