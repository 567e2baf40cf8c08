"""The dataset's attribute classifier, the judge of the evaluation protocol (docs/method.md §7):
trained once (`classifier_training`, on the splits of `classifier_data`), cached and reused.

Where the folder has an official val split, each attribute's decision threshold is chosen there
to maximise the balanced accuracy and folded into the logits' bias, so it judges whether
G(x, ±δ0) carries an attribute by probability > 0.5. It reports its balanced and plain accuracy
per attribute on its REAL held-out images.

One classifier per dataset, image size, crop, excluded GAN test images and attribute set
(`for_dataset`, `default_dir`): an evaluation asks for the one attribute its run edits (a judge
of one attribute is better than one of 40 sharing a small network: docs/method.md §7);
`python -m maae_tf.train_classifier --attrs=all` trains every attribute its train split can teach
(`default_attrs`: both classes present; all 40 on CelebA) for the comparison with peers. Trained
once by that command or by the first evaluation that needs it, cached under
`default_dir(config, attrs)` and reused by every evaluation of every run with that dataset, those
test images and that attribute.

    model, info = for_dataset(config, ["Smiling"])
    judge(model, images, column(info, "smiling"))       # bool [N]
    info["test_details"]["Smiling"]["balanced_accuracy"]  # 0.91, on the real held-out images
"""

from __future__ import annotations

import hashlib
import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from maae_tf import attributes
from maae_tf.config import base_config
from maae_tf.data import layout
from maae_tf.data.masks.segmenter import cache_dir as cache_root
from maae_tf.data.masks.segmenter import sha256_of
from maae_tf.evaluation import classifier_data
from maae_tf.evaluation import classifier_training
from maae_tf.evaluation import lip_geometry
from maae_tf.files import write_text_atomic
from maae_tf.model import precision

# bump when the network or the training recipe changes (invalidates caches); 4: always float32, where
# 3 took the caller's policy (bfloat16 when a run's in-training evaluation trained it); 5: a Judge,
# with the lips' geometry where config.eval.classifier_lip_geometry asks for it
VERSION = 5
WEIGHTS_FILE = "classifier.weights.h5"
INFO_FILE = "classifier.json"
# the attributes `lip_geometry` measures: their judge adds its term when config.eval.classifier_lip_geometry
LIP_ATTRIBUTES = ("Mouth_Slightly_Open",)


class Judge:
    """The judge as evaluations call it, like the Keras network it wraps: judge(images) gives the
    logits [N, K] of images [N, S, S, 3] in [-1, 1], the network's plus, for the columns in
    `terms` ({column: lip_geometry.LogisticTerm}), the term's logit of the lips' geometry."""

    def __init__(self, network: keras.Model, terms: dict | None = None):
        self.network, self.terms = network, dict(terms or {})

    def __call__(self, images, training: bool = False) -> np.ndarray:
        logits = np.array(self.network(tf.convert_to_tensor(images, tf.float32), training=False))
        if self.terms:
            measured = lip_geometry.features(np.asarray(images))
            for j, term in self.terms.items():
                logits[:, j] += term.logits(measured)
        return logits


def judge(model: Judge, images, index: int) -> np.ndarray:
    """bool [N]: whether the classifier judges each image to carry its attribute number `index`
    (`column(info, attr)`; probability > 0.5, i.e. logit > 0: `for_dataset` folds each attribute's
    validation threshold into the logits' bias)."""
    return classifier_training.predict_logits(model, images)[:, index] > 0.0


def probabilities(model: Judge, images) -> np.ndarray:
    """Probabilities [N, num_attrs] (sigmoid of the logits) of images [N, S, S, 3] in [-1, 1]."""
    return 1.0 / (1.0 + np.exp(-classifier_training.predict_logits(model, images).astype(np.float64)))


def default_attrs(config, seed: int | None = None, plan: dict | None = None) -> list[str]:
    """The CelebA attributes (in `attributes.CELEBA_ATTRIBUTES` order) whose classifier train split
    has both positives and negatives: what a classifier can learn from this dataset (all 40 on CelebA)."""
    plan = classifier_data.split_plan(config, seed) if plan is None else plan
    labels = plan["labels"][plan["role"] == classifier_data.TRAIN]
    if not len(labels):
        raise ValueError(f"the classifier's train split of {config.data_dir!r} is empty: it needs images")
    varies = (labels > 0).any(axis=0) & (labels < 0).any(axis=0)
    return [name for name, v in zip(attributes.CELEBA_ATTRIBUTES, varies) if v]


def _crop(config) -> list[float]:
    return [float(config.crop_top), float(config.crop_left), float(config.crop_height), float(config.crop_width)]


def _attr_set(attrs) -> list[str]:
    """Official names of `attrs`, once each, in CelebA order: the classifier's output columns."""
    names = set(classifier_data.attribute_columns(attrs)[0])
    return [a for a in attributes.CELEBA_ATTRIBUTES if a in names]


def default_dir(config, attrs=None) -> str:
    """Where the classifier of config's dataset, image size, crop and attributes lives:
    config.eval.classifier_dir when set, else
    `<cache>/classifiers/<dataset folder name>-<8 hex>-<S>px[-without-<attr>-test]/<attributes>`
    (cache: $MAAE_TF_CACHE, else ~/.cache/maae_tf; the hex: SHA-1 of the data_dir with symlinks
    resolved, crop, S and the GAN test images it must not train on, so runs of two attributes under
    the paper protocol each keep their own classifier instead of retraining one in turn;
    <attributes>: `all` for `default_attrs` (attrs None), else the names joined by `+`, or their
    count and a hash when there are more than 3)."""
    chosen = config.eval.get("classifier_dir", "")
    if chosen:
        return chosen
    if attrs is None:
        leaf = "all"
    else:
        names = _attr_set(attrs)
        leaf = ("+".join(names) if len(names) <= 3 else
                f"{len(names)}-attributes-{hashlib.sha1(' '.join(names).encode('utf-8')).hexdigest()[:8]}")
    data_dir = os.path.realpath(config.data_dir)
    exclusion = classifier_data.exclusion(config)
    key = json.dumps([data_dir, _crop(config), int(config.image_size)] + ([exclusion] if exclusion else []),
                     sort_keys=True)
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    suffix = f"-without-{exclusion['attr']}-test" if exclusion else ""
    return os.path.join(cache_root(), "classifiers",
                        f"{os.path.basename(data_dir)}-{digest}-{int(config.image_size)}px{suffix}", leaf)


def column(info: dict, attr: str) -> int:
    """Index of attribute `attr` (any name `attributes.resolve` accepts) among the outputs of the
    classifier that `info` describes (`info["attrs"]`)."""
    name = attributes.resolve(attr)
    if name not in info["attrs"]:
        raise ValueError(f"the attribute classifier has no output for {name}; its attributes: "
                         + ", ".join(info["attrs"]))
    return info["attrs"].index(name)


def _identity(config, steps, batch, seed, width, plan) -> dict:
    """What a cached classifier must match to be reused (besides holding the attributes asked for)."""
    attr_file = os.path.join(config.data_dir, layout.ATTR_FILE)
    return {
        "version": VERSION,
        "image_size": int(config.image_size),
        "crop": _crop(config),
        "data_dir": os.path.realpath(config.data_dir),
        "attr_file_bytes": os.path.getsize(attr_file) if os.path.isfile(attr_file) else None,
        "steps": int(steps),
        "batch": int(batch),
        "seed": int(seed),
        "width": float(width),
        "split": {"test": plan["test_source"], "val": plan["val_source"], "counts": plan["counts"],
                  "held_out_share": classifier_data.HELD_OUT_SHARE},
        "excluded": plan["exclusion"],
        "lip_geometry": lip_geometry_on(config),
    }


def lip_geometry_on(config) -> bool:
    """Whether the judge adds the lips' geometry (config.eval.classifier_lip_geometry; off in a
    config from before it)."""
    return bool(config.eval.get("classifier_lip_geometry", False))


def _lip_attrs(config, names) -> list[str]:
    """Those of `names` whose judge adds the lips' geometry (`lip_geometry_on`)."""
    return [n for n in names if n in LIP_ATTRIBUTES] if lip_geometry_on(config) else []


def _fit_terms(config, plan: dict, names: list[str], batch: int = 64) -> dict:
    """{column: lip_geometry.LogisticTerm} fitted on the classifier's train images (unaugmented)
    for the attributes of `names` that `_lip_attrs` picks."""
    chosen = _lip_attrs(config, names)
    if not chosen:
        return {}
    cols = classifier_data.attribute_columns(chosen)[1]
    measured, labels = [], []
    for images, label in classifier_data.role_images(config, plan, classifier_data.TRAIN).batch(batch):
        measured.append(lip_geometry.features(images.numpy()))
        labels.append(label.numpy()[:, cols] > 0.5)
    measured, labels = np.concatenate(measured), np.concatenate(labels)
    return {names.index(n): lip_geometry.LogisticTerm.fit(measured, labels[:, k]) for k, n in enumerate(chosen)}


def _cached(folder: str, want: dict) -> dict | None:
    """The saved info of the classifier in `folder` when its identity is `want` and its weights
    file is the one the info was written with (two writers racing leave no mismatched pair)."""
    info_path, weights_path = os.path.join(folder, INFO_FILE), os.path.join(folder, WEIGHTS_FILE)
    if not (os.path.isfile(info_path) and os.path.isfile(weights_path)):
        return None
    try:
        with open(info_path, encoding="utf-8") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if any(saved.get(k) != v for k, v in want.items()):
        logging.info("the classifier cached in %s was trained with other settings", folder)
        return None
    if saved.get("weights_sha256") != sha256_of(weights_path):
        logging.warning("%s does not match %s (written by another process?)", WEIGHTS_FILE, INFO_FILE)
        return None
    return saved


def _command(config, attrs, steps, batch, seed, width) -> str:
    """The train_classifier command line that trains the classifier `for_dataset` asked for."""
    cmd = (f"python -m maae_tf.train_classifier --data_dir={os.path.abspath(config.data_dir)} "
           f"--image_size={int(config.image_size)} --steps={steps} --batch={batch} --seed={seed} "
           f"--width={width:g} --attrs={','.join(attrs)}")
    if config.get("split_protocol", "official") == "paper":
        cmd += (f" --split_protocol=paper --attr={attributes.snake(attributes.resolve(config.attr))} "
                f"--split_test_per_attribute={int(config.split_test_per_attribute)} --split_seed={int(config.seed)}")
    if lip_geometry_on(config):
        cmd += " --lip_geometry"
    if _crop(config) != _crop(base_config()):
        cmd += " --workdir=<a run with this crop>"
    return cmd


def for_dataset(config, attrs=None, cache_dir: str | None = None, steps: int | None = None,
                batch: int | None = None, seed: int | None = None, width: float = 1.0,
                train_if_missing: bool = True) -> tuple[Judge, dict]:
    """The classifier of config's dataset, image size and crop, for exactly the attributes `attrs`
    (names or aliases; None: `default_attrs(config)`, every one its train split can teach), never
    trained on the images a run of `config` is evaluated on (`classifier_data.split_plan`). A judge of the one
    attribute a run edits: on the dev set at 64 px, Mouth_Slightly_Open scores 0.889 balanced
    accuracy alone and 0.863 as one of 40 outputs (the 40 share the small network's capacity).

    Reused from `cache_dir` (default `default_dir(config, attrs)`) when it was trained with these
    settings (steps and batch default to config.eval.classifier_steps / classifier_batch, seed to
    config.seed), on the same splits with the same GAN test images kept out, for these attributes;
    otherwise trained on them (CelebA order), each attribute's decision threshold
    chosen on the classifier's validation images (`choose_thresholds`, folded into the logits'
    bias), tested on its held-out images and saved (the JSON removed, the weights written to a
    temporary `.weights.h5` renamed into place, then the JSON). With train_if_missing=False a
    missing classifier raises FileNotFoundError naming the folder and the command that trains it.
    With config.eval.classifier_lip_geometry, the judge of each attribute in LIP_ATTRIBUTES adds to
    its network's logit a logistic regression on the lips' geometry (`lip_geometry`), fitted on the
    same train images (held-out balanced accuracy 0.892-0.913 against the network's 0.862-0.901 on
    the dev set at 64 px: docs/method.md §7); its threshold is then chosen on the sum.
    Built, trained and run in float32 whatever Keras' global dtype policy: a run's in-training
    evaluation calls it under bfloat16, where Mouth_Slightly_Open's judge at seed 1 read 0.853 of
    the dev set's held-out images against 0.862 trained in float32 (docs/method.md §7).

    Returns (judge, info): judge is a `Judge` (called like a Keras model: images → logits);
    info["attrs"] are its output columns in order (`column` finds
    one), `test_accuracy` {name: accuracy on the held-out real images}, `test_details` {name:
    `classifier_training.accuracy(..., details=True)`'s dict, with balanced_accuracy}, `mean_test_accuracy`,
    `mean_test_balanced_accuracy`, `thresholds` {name: the logit moved to 0}, `split_note` (the
    line that says what it trained and was tested on), `train_seconds` (of the training that made
    it), `terms` {name: the lip-geometry term's coefficients}, `network_test_details` (the network
    alone on the held-out images, where there are terms, else None), `reused`, `path` (the network's
    weights file) and the settings it was trained with."""
    with precision.policy_scope("float32"):  # one judge whatever the caller's policy (a run's: bfloat16)
        return _for_dataset(config, attrs, cache_dir, steps, batch, seed, width, train_if_missing)


def _for_dataset(config, attrs, cache_dir, steps, batch, seed, width, train_if_missing) -> tuple[Judge, dict]:
    steps = int(config.eval.classifier_steps if steps is None else steps)
    batch = int(config.eval.classifier_batch if batch is None else batch)
    seed = int(config.seed if seed is None else seed)
    plan = classifier_data.split_plan(config, seed)
    names = default_attrs(config, plan=plan) if attrs is None else _attr_set(attrs)
    folder = cache_dir or default_dir(config, None if attrs is None else names)
    want = dict(_identity(config, steps, batch, seed, width, plan), attrs=names)
    weights_path = os.path.join(folder, WEIGHTS_FILE)
    saved = _cached(folder, want)
    if saved is not None:
        network = classifier_training.build_classifier(want["image_size"], len(saved["attrs"]), width=width, seed=seed)
        network.load_weights(weights_path)
        terms = {saved["attrs"].index(n): lip_geometry.LogisticTerm.from_dict(t) for n, t in saved["terms"].items()}
        model = Judge(network, terms)
        logging.info("reusing the attribute classifier in %s (mean balanced accuracy %.4f over %d attributes); %s",
                     folder, saved["mean_test_balanced_accuracy"], len(saved["attrs"]), saved["split_note"])
        return model, dict(saved, reused=True, path=weights_path)

    if not train_if_missing:
        raise FileNotFoundError(
            f"no attribute classifier with these settings and attributes in {folder}; train it with:\n  "
            + _command(config, names, steps, batch, seed, width))
    if not plan["counts"]["test"]:
        raise ValueError(f"the classifier's held-out split of {config.data_dir!r} is empty: it is tested on it")
    note = classifier_data.split_note(plan, config)
    logging.info("training the attribute classifier of %s (%d attributes): %d steps of %d images; %s",
                 config.data_dir, len(names), steps, batch, note)
    t0 = time.perf_counter()
    network = classifier_training.train_classifier(config, names, steps, batch, seed=seed, width=width, plan=plan)
    terms = _fit_terms(config, plan, names)
    if terms:
        note += "; the lips' geometry (dlib's 68 landmarks) added to the logit of " + ", ".join(names[j] for j in terms)
    model = Judge(network, terms)
    cols = classifier_data.attribute_columns(names)[1]
    val_logits = classifier_training.logits_of(model, config, plan, classifier_data.VAL, cols)
    thresholds = classifier_training.choose_thresholds(*val_logits)
    bias = network.get_layer("logits").bias
    bias.assign(bias - tf.constant(thresholds, bias.dtype))  # judge, probabilities: the threshold is logit 0
    train_seconds = time.perf_counter() - t0
    details = classifier_training.accuracy(model, config, names, split="test", details=True, plan=plan)
    # what the network alone reads of the same held-out images, beside the sum (docs/method.md §7)
    network_details = (classifier_training.accuracy(network, config, names, split="test", details=True, plan=plan)
                       if terms else None)
    test_accuracy = {n: d["accuracy"] for n, d in details.items()}
    balanced = [d["balanced_accuracy"] for d in details.values() if d["balanced_accuracy"] is not None]
    info = dict(want, attrs=names, test_accuracy=test_accuracy, test_details=details,
                mean_test_accuracy=float(np.mean(list(test_accuracy.values()))),
                mean_test_balanced_accuracy=float(np.mean(balanced)) if balanced else None,
                thresholds={n: float(t) for n, t in zip(names, thresholds)}, split_note=note,
                train_seconds=round(train_seconds, 2), terms={names[j]: t.to_dict() for j, t in terms.items()},
                network_test_details=network_details)
    os.makedirs(folder, exist_ok=True)
    info_path = os.path.join(folder, INFO_FILE)
    if os.path.exists(info_path):
        os.remove(info_path)  # never a stale JSON beside new weights, should we stop in between
    tmp = os.path.join(folder, f"classifier.tmp-{os.getpid()}.weights.h5")  # Keras wants the suffix
    network.save_weights(tmp)
    info["weights_sha256"] = sha256_of(tmp)
    os.replace(tmp, weights_path)
    write_text_atomic(info_path, json.dumps(info, indent=2, sort_keys=True) + "\n")
    logging.info("attribute classifier saved in %s: mean balanced accuracy %.4f", folder,
                 info["mean_test_balanced_accuracy"] or float("nan"))
    return model, dict(info, reused=False, path=weights_path)
