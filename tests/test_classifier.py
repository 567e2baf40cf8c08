"""Tests of maae_tf.evaluation.classifier (the dataset's attribute classifier) and the maae_tf.train_classifier
command line (CPU, tiny: 32 px, narrow, 30 steps)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from maae_tf import attributes

from maae_tf.evaluation import classifier, classifier_data, classifier_training
from maae_tf.data import layout, pipeline
from maae_tf.model import precision

from conftest import TINY_ATTR, TINY_SPLITS, tiny_config, write_tiny_celeba  # noqa: E402  (tests/ is on sys.path)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MOUTH = attributes.resolve(TINY_ATTR)
STEPS, BATCH, WIDTH = 30, 8, 0.125
JUDGE = {"eval.classifier_steps": STEPS, "eval.classifier_batch": BATCH}  # every test's classifier


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test caches its classifiers under its own tmp folder, never under ~/.cache."""
    monkeypatch.setenv("MAAE_TF_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_classifier_learns_an_obvious_colour_and_is_deterministic(tiny_celeba):
    cfg = tiny_config(tiny_celeba, **JUDGE)
    model = classifier_training.train_classifier(cfg, [TINY_ATTR], steps=STEPS, batch=BATCH, seed=3, width=WIDTH)
    assert model.output_shape == (None, 1)
    acc = classifier_training.accuracy(model, cfg, [TINY_ATTR], split="test", details=True)
    assert acc[MOUTH]["num_images"] == TINY_SPLITS[2]
    assert acc[MOUTH]["accuracy"] >= 0.9, acc  # chance: 0.5 (the test split is balanced)
    d = acc[MOUTH]
    assert d["balanced_accuracy"] == pytest.approx((d["accuracy_positives"] + d["accuracy_negatives"]) / 2)
    again = classifier_training.train_classifier(cfg, [TINY_ATTR], steps=STEPS, batch=BATCH, seed=3, width=WIDTH)
    for a, b in zip(model.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert classifier_training.build_classifier(32, 40).output_shape == (None, 40)


def test_default_attrs_dir_and_column(tiny_celeba, private_cache, tmp_path):
    cfg = tiny_config(tiny_celeba, **JUDGE)
    attrs = classifier.default_attrs(cfg)
    assert MOUTH in attrs and attrs == [a for a in attributes.CELEBA_ATTRIBUTES if a in attrs]
    folder = classifier.default_dir(cfg)
    assert os.path.dirname(os.path.dirname(folder)) == str(private_cache / "classifiers")
    assert re.fullmatch(r"celeba-[0-9a-f]{8}-32px/all", os.path.relpath(folder, os.path.dirname(os.path.dirname(folder))))
    assert classifier.default_dir(cfg, ["mouth_open"]) == os.path.join(os.path.dirname(folder), MOUTH)
    assert classifier.default_dir(cfg, ["mouth_open", "blond"]) == os.path.join(
        os.path.dirname(folder), f"Blond_Hair+{MOUTH}")  # CelebA order, whatever the order asked
    assert re.fullmatch(r"4-attributes-[0-9a-f]{8}", os.path.basename(
        classifier.default_dir(cfg, ["mouth_open", "blond", "smiling", "male"])))
    assert classifier.default_dir(tiny_config(tiny_celeba, image_size=64, **JUDGE)) != folder
    (tmp_path / "link").symlink_to(tiny_celeba, target_is_directory=True)
    assert classifier.default_dir(tiny_config(tmp_path / "link", **JUDGE)) == folder  # one dataset, one classifier
    cfg.crop_top = 0.0
    assert classifier.default_dir(cfg) != folder  # another crop, another classifier
    cfg.eval.classifier_dir = str(tmp_path / "mine")
    assert classifier.default_dir(cfg) == str(tmp_path / "mine")

    info = {"attrs": ["Blond_Hair", MOUTH]}
    assert classifier.column(info, "mouth_open") == 1 and classifier.column(info, "blond") == 0
    with pytest.raises(ValueError, match="Smiling.*Blond_Hair, Mouth_Slightly_Open"):
        classifier.column(info, "smile")
    with pytest.raises(ValueError, match="unknown attribute"):
        classifier.column(info, "no_such_attribute")


def test_the_judge_is_float32_whatever_the_callers_policy(tiny_celeba, tmp_path):
    # a run's in-training evaluation asks for its judge under bfloat16: the judge stays the one float32 gives
    cfg = tiny_config(tiny_celeba, **JUDGE)
    with precision.policy_scope("mixed_bfloat16"):
        under_bf16, _ = classifier.for_dataset(cfg, [TINY_ATTR], cache_dir=str(tmp_path / "a"), width=WIDTH)
        reused, info = classifier.for_dataset(cfg, [TINY_ATTR], cache_dir=str(tmp_path / "a"), width=WIDTH)
    assert info["reused"]
    plain, _ = classifier.for_dataset(cfg, [TINY_ATTR], cache_dir=str(tmp_path / "b"), width=WIDTH)
    for model in (under_bf16, reused):
        assert {layer.compute_dtype for layer in model.network.layers} == {"float32"}
        for a, b in zip(model.network.get_weights(), plain.network.get_weights()):
            np.testing.assert_array_equal(a, b)


def test_for_dataset_trains_once_reuses_and_retrains(tmp_path):
    # a private copy where Bald is negative on every training image: not in default_attrs
    root = write_tiny_celeba(tmp_path / "data" / "celeba")
    attr_file = root / layout.ATTR_FILE
    lines = attr_file.read_text().splitlines()
    for i in range(2, 2 + TINY_SPLITS[0]):
        name, *values = lines[i].split()
        values[attributes.index("Bald")] = "-1"
        lines[i] = name + " " + " ".join(f"{int(v):2d}" for v in values)
    attr_file.write_text("\n".join(lines) + "\n")
    cfg = tiny_config(root, **JUDGE)
    assert "Bald" not in classifier.default_attrs(cfg)
    kw = dict(width=WIDTH)

    model, info = classifier.for_dataset(cfg, [TINY_ATTR], **kw)           # a run's judge: its attribute alone
    assert info["reused"] is False and info["attrs"] == [MOUTH]
    assert info["steps"] == STEPS and info["batch"] == BATCH
    assert info["path"] == os.path.join(classifier.default_dir(cfg, [TINY_ATTR]), classifier.WEIGHTS_FILE)
    assert os.path.isfile(info["path"]) and info["train_seconds"] > 0
    assert set(info["test_accuracy"]) == set(info["attrs"]) == set(info["test_details"]) == set(info["thresholds"])
    assert info["test_details"][MOUTH]["num_images"] == TINY_SPLITS[2]
    assert info["test_details"][MOUTH]["balanced_accuracy"] >= 0.9, info["test_details"]  # the colour is obvious
    assert info["mean_test_accuracy"] == pytest.approx(np.mean(list(info["test_accuracy"].values())))
    assert "(official partition)" in info["split_note"] and "GAN" not in info["split_note"]
    images = next(iter(pipeline.images_dataset(cfg, "test", batch_size=12)))["image"]
    j = classifier.column(info, TINY_ATTR)
    logits = classifier_training.predict_logits(model, images)
    np.testing.assert_allclose(classifier.probabilities(model, images), 1 / (1 + np.exp(-logits)), rtol=1e-6)
    np.testing.assert_array_equal(classifier.judge(model, images, j), logits[:, j] > 0)

    again, info2 = classifier.for_dataset(cfg, ["mouth_slightly_open"], **kw)  # the same request
    assert info2["reused"] is True and info2["attrs"] == info["attrs"]
    assert info2["test_details"] == info["test_details"]
    np.testing.assert_array_equal(classifier_training.predict_logits(again, images), logits)

    _, info3 = classifier.for_dataset(cfg, ["bald", TINY_ATTR], **kw)      # another attribute set: its own
    assert info3["reused"] is False and info3["attrs"] == ["Bald", MOUTH]
    assert os.path.dirname(info3["path"]) != os.path.dirname(info["path"])
    _, info4 = classifier.for_dataset(cfg, **kw)                           # every attribute it can learn
    assert info4["reused"] is False and info4["attrs"] == classifier.default_attrs(cfg) and len(info4["attrs"]) == 39
    assert classifier.for_dataset(cfg, **kw)[1]["reused"] is True
    assert classifier.for_dataset(cfg, [TINY_ATTR], **kw)[1]["reused"] is True  # each kept in its folder

    with pytest.raises(FileNotFoundError, match=r"(?s)no attribute classifier.*train_classifier --data_dir"):
        classifier.for_dataset(cfg, [TINY_ATTR], steps=STEPS + 1, train_if_missing=False, **kw)
    _, info5 = classifier.for_dataset(cfg, [TINY_ATTR], steps=STEPS + 1, **kw)  # another setting: retrains
    assert info5["reused"] is False and info5["steps"] == STEPS + 1
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "elsewhere")):
        classifier.for_dataset(cfg, cache_dir=str(tmp_path / "elsewhere"), train_if_missing=False, **kw)


def _cli(*args, cache):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2", MAAE_TF_CACHE=str(cache))
    return subprocess.run([sys.executable, "-m", "maae_tf.train_classifier", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_end_to_end(tiny_celeba, tmp_path, private_cache):
    args = (f"--data_dir={tiny_celeba}", "--image_size=32", f"--steps={STEPS}", f"--batch={BATCH}",
            f"--width={WIDTH}", "--attrs=mouth_open,blond_hair", f"--out={tmp_path / 'report'}")
    proc = _cli(*args, cache=private_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "trained in" in out and "on positives" in out and "on negatives" in out and "balanced acc." in out
    assert f"{TINY_SPLITS[0]} train / {TINY_SPLITS[1]} val / {TINY_SPLITS[2]} held-out images (official partition)" in out
    rows = [line for line in out.splitlines() if line.split(" ")[0] in attributes.CELEBA_ATTRIBUTES]
    assert [r.split(" ")[0] for r in rows] == ["Blond_Hair", MOUTH], out  # those asked, in CelebA order
    mouth = rows[1]
    assert re.fullmatch(rf"{MOUTH}(\s+\d+\.\d %){{4}}\s+{TINY_SPLITS[2]}\s+6", mouth), mouth
    assert re.search(r"mean over 2 attributes: balanced accuracy \d+\.\d %, accuracy \d+\.\d %", out), out
    assert "94.5 %" in out
    report = (tmp_path / "report" / "report.md").read_text()
    assert f"| {MOUTH} |" in report and "94.5 %" in report
    cfg = tiny_config(tiny_celeba, **JUDGE)
    assert os.path.isfile(os.path.join(classifier.default_dir(cfg, ["blond", TINY_ATTR]), classifier.WEIGHTS_FILE))

    # the in-process API reuses what the command trained
    _, info = classifier.for_dataset(cfg, [TINY_ATTR, "blond_hair"], width=WIDTH)
    assert info["reused"] is True


def test_cli_bad_input_exits_2(tmp_path, private_cache, tiny_celeba):
    proc = _cli(f"--data_dir={tmp_path / 'nope'}", cache=private_cache)
    assert proc.returncode == 2 and "error:" in proc.stderr and "nope" in proc.stderr, proc.stderr[-2000:]
    proc = _cli(f"--data_dir={tiny_celeba}", "--attrs=no_such_attribute", cache=private_cache)
    assert proc.returncode == 2 and "error: unknown attribute" in proc.stderr, proc.stderr[-2000:]
    assert not private_cache.exists()


def test_balanced_accuracy_and_thresholds():
    truth = np.array([[1, 1], [1, 1], [1, 1], [0, 1], [0, 1], [0, 1], [0, 1], [0, 1]], bool)
    pred = np.array([[1, 1], [0, 1], [0, 1], [0, 0], [0, 1], [0, 1], [0, 1], [1, 1]], bool)
    # column 0: positives 1/3 right, negatives 4/5 right; column 1 has no negatives
    ba = classifier_training.balanced_accuracy(pred, truth)
    assert ba[0] == pytest.approx((1 / 3 + 4 / 5) / 2) and np.isnan(ba[1])
    majority = classifier_training.balanced_accuracy(np.zeros(8, bool)[:, None], truth[:, :1])[0]
    assert majority == 0.5  # the majority answer: chance
    logits = np.array([[3.0, 1.0], [2.0, 1.0], [1.5, 1.0], [-1.0, 1.0], [1.0, 1.0], [0.5, 1.0], [0.2, 1.0], [-2.0, 1.0]])
    t = classifier_training.choose_thresholds(logits, truth)
    assert 1.0 <= t[0] < 1.5 and t[1] == 0.0  # every positive above, every negative below; no negatives: 0
    assert classifier_training.balanced_accuracy(logits[:, :1] > t[0], truth[:, :1])[0] == 1.0


def test_augment_flips_and_shifts_by_seed_and_index():
    """Training images move by at most SHIFT_PX pixels (mirrored at the border) and flip; the same
    (seed, index) gives the same image, so training stays deterministic."""
    image = np.random.default_rng(0).uniform(-1, 1, (16, 16, 3)).astype(np.float32)
    k = classifier_data.SHIFT_PX
    out = [classifier_data.augment(image, seed, i).numpy() for seed, i in ((0, 1), (0, 1), (0, 2), (1, 1))]
    assert out[0].shape == image.shape
    np.testing.assert_array_equal(out[0], out[1])
    moved = [o for o in out if not np.array_equal(o, image)]
    assert moved  # some draw shifted or flipped it
    padded = np.pad(image, ((k, k), (k, k), (0, 0)), mode="symmetric")
    for o in out:  # each is a window of the mirrored-border image, or of its mirror
        windows = [src[dy:dy + 16, dx:dx + 16] for src in (padded, padded[:, ::-1])
                   for dy in range(2 * k + 1) for dx in range(2 * k + 1)]
        assert any(np.array_equal(o, w) for w in windows)


def paper_config(data_dir, attr=TINY_ATTR, n_test=10):
    c = tiny_config(data_dir, **JUDGE)
    c.attr, c.split_protocol, c.split_test_per_attribute = attr, "paper", n_test
    return c


@pytest.fixture(scope="module")
def no_test_partition(tmp_path_factory):
    """80 images, every one in the official train partition (like ../shared/celeba-dev)."""
    return write_tiny_celeba(tmp_path_factory.mktemp("dev") / "celeba", n=80, splits=(80, 0, 0))


def test_own_held_out_split_is_disjoint_from_the_gan_test_images(no_test_partition):
    cfg = paper_config(no_test_partition)
    plan = classifier_data.split_plan(cfg)
    role, files = plan["role"], np.array(plan["files"])
    gan_test = {os.path.basename(p) for p in layout.split_files(cfg, "test")[0]}  # what the run is evaluated on
    assert len(gan_test) == 10 and plan["excluded"] == 10
    assert plan["test_source"] == "own" and plan["val_source"] == "none"
    held_out, train = (set(files[role == r]) for r in (classifier_data.TEST, classifier_data.TRAIN))
    assert held_out and train and not (role == classifier_data.VAL).any()
    assert not held_out & gan_test and not train & gan_test and not held_out & train
    assert set(files[role == classifier_data.UNUSED]) == gan_test and len(held_out | train | gan_test) == 80
    assert plan["counts"] == {"train": len(train), "val": 0, "test": len(held_out)}
    assert len(held_out) + len(held_out & gan_test) <= round(classifier_data.HELD_OUT_SHARE * 80)
    note = classifier_data.split_note(plan, cfg)
    assert f"{len(train)} train / 0 val / {len(held_out)} held-out images" in note
    assert "no official test partition" in note and "the GAN's 10 test images of Mouth_Slightly_Open" in note
    # the same seed draws the same split; the official protocol keeps every image
    np.testing.assert_array_equal(classifier_data.split_plan(cfg)["role"], role)
    official = classifier_data.split_plan(tiny_config(no_test_partition, **JUDGE))
    assert official["excluded"] == 0 and official["exclusion"] is None
    assert (official["role"] != classifier_data.UNUSED).all()


def test_gan_test_images_never_train_on_the_official_partition(tiny_celeba):
    cfg = paper_config(tiny_celeba, n_test=8)
    plan = classifier_data.split_plan(cfg)
    gan_test = classifier_data.gan_test_mask(cfg, plan["files"], plan["labels"])
    assert gan_test.sum() == 8 and plan["test_source"] == "official"
    assert not np.isin(plan["role"][gan_test], (classifier_data.TRAIN, classifier_data.VAL)).any()
    # the official test split stays whole: peers report on it, and it never trained the classifier
    assert plan["counts"]["test"] == TINY_SPLITS[2]
    assert plan["counts"]["train"] + plan["counts"]["val"] == TINY_SPLITS[0] + TINY_SPLITS[1] - (gan_test & (
        plan["role"] != classifier_data.TEST)).sum()


def test_the_exclusion_is_part_of_the_cache_key(no_test_partition):
    dirs = {classifier.default_dir(c) for c in (
        tiny_config(no_test_partition, **JUDGE), paper_config(no_test_partition),
        paper_config(no_test_partition, n_test=12), paper_config(no_test_partition, attr="blond_hair"))}
    assert len(dirs) == 4, dirs
    assert classifier.default_dir(paper_config(no_test_partition), [TINY_ATTR]).endswith(
        f"-without-Mouth_Slightly_Open-test/{MOUTH}")
    seeded = paper_config(no_test_partition)
    seeded.seed = 1  # another draw of the GAN's test images
    assert classifier.default_dir(seeded) != classifier.default_dir(paper_config(no_test_partition))
    # an explicit folder is checked against the exclusion too: another exclusion is not reused
    a, b = paper_config(no_test_partition), paper_config(no_test_partition, n_test=12)
    excluded_a, excluded_b = classifier_data.split_plan(a)["exclusion"], classifier_data.split_plan(b)["exclusion"]
    assert excluded_a != excluded_b and excluded_a["images"] == 10


def test_paper_protocol_on_a_folder_without_test_partition(no_test_partition, tmp_path):
    cfg = paper_config(no_test_partition)
    cfg.eval.classifier_dir = str(tmp_path / "judge")
    kw = dict(width=WIDTH)
    _, info = classifier.for_dataset(cfg, [TINY_ATTR], **kw)
    plan = classifier_data.split_plan(cfg)
    assert info["reused"] is False and info["split"]["test"] == "own"
    assert info["test_details"][MOUTH]["num_images"] == plan["counts"]["test"] > 0
    assert info["test_details"][MOUTH]["balanced_accuracy"] >= 0.9, info["test_details"][MOUTH]
    assert "excluded from its training and held-out images" in info["split_note"]
    assert info["thresholds"] == {MOUTH: 0.0}  # no official val split: the balanced loss's logit 0
    assert classifier.for_dataset(cfg, [TINY_ATTR], **kw)[1]["reused"] is True
    other = paper_config(no_test_partition, n_test=12)  # another exclusion, the same explicit folder
    other.eval.classifier_dir = cfg.eval.classifier_dir
    with pytest.raises(FileNotFoundError, match="--split_protocol=paper --attr=mouth_slightly_open "
                                                "--split_test_per_attribute=12 --split_seed=0"):
        classifier.for_dataset(other, [TINY_ATTR], train_if_missing=False, **kw)
