"""`python -m maae_tf.train`: the missing-dataset message, a short run's workdir (config.json,
checkpoints, TensorBoard scalars, images and a profile), resuming after kill -9, and refusing to
resume a workdir with other settings."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest
import tensorflow as tf

from maae_tf.data import synthetic

REPO = Path(__file__).resolve().parents[1]
TINY = ["--config=configs/quickstart.py", "--config.image_size=32", "--config.width=0.0625",
        "--config.batch_size=2", "--config.log_every=1", "--config.image_every=3",
        "--config.synthetic.build_if_missing=False", "--config.eval.every=0"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic.build(str(tmp_path_factory.mktemp("synth") / "celeba"), 40, seed=3, workers=1)


def train_cmd(workdir, data_dir, *extra):
    return [sys.executable, "-m", "maae_tf.train", "--attr=mouth_open", f"--workdir={workdir}",
            *TINY, f"--config.data_dir={data_dir}", *extra]


def run(cmd, timeout=240):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def checkpoint_steps(workdir):
    ckpts = Path(workdir, "checkpoints").glob("ckpt-*.index")
    return sorted(int(p.name[len("ckpt-"):-len(".index")]) for p in ckpts)


def logged_steps(workdir, tag="train/g_loss"):
    """The steps at which each TensorBoard events file of the run (one a process) logged `tag`,
    oldest first."""
    runs = []
    for path in Path(workdir, "tensorboard").glob("events.out.tfevents.*"):
        events = list(tf.compat.v1.train.summary_iterator(str(path)))
        steps = [e.step for e in events for v in e.summary.value if v.tag == tag]
        if steps:
            runs.append((events[0].wall_time, steps))
    return [steps for _, steps in sorted(runs)]


def test_without_a_dataset_it_names_the_layout_and_the_quickstart(tmp_path):
    r = run([sys.executable, "-m", "maae_tf.train", "--attr=mouth_open", f"--workdir={tmp_path / 'w'}",
             f"--config.data_dir={tmp_path / 'nothing'}"])
    assert r.returncode == 2
    assert "img_align_celeba" in r.stderr and "list_attr_celeba.txt" in r.stderr
    assert "configs/quickstart.py" in r.stderr
    assert not (tmp_path / "w" / "checkpoints").exists()  # nothing trained on anything


def test_unknown_attribute_lists_the_valid_ones(tmp_path, synth):
    cmd = [a if not a.startswith("--attr") else "--attr=moustache_curl" for a in train_cmd(tmp_path / "w", synth)]
    r = run(cmd)
    assert r.returncode == 2
    assert "moustache_curl" in r.stderr and "mouth_open" in r.stderr


def test_short_run_writes_config_checkpoints_and_summaries(tmp_path, synth):
    workdir = tmp_path / "run"
    # with the in-training evaluation every 2 steps (its classifier trained into a private folder)
    r = run(train_cmd(workdir, synth, "--config.train_steps=4", "--config.checkpoint_every=2",
                      "--profile_steps=1,3", "--config.eval.every=2", "--config.eval.batch=4",
                      "--config.eval.classifier_steps=10", "--config.eval.classifier_batch=4",
                      f"--config.eval.classifier_dir={tmp_path / 'classifier'}"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert list((workdir / "tensorboard" / "plugins" / "profile").glob("*/*.xplane.pb"))  # --profile_steps
    cfg = json.loads((workdir / "config.json").read_text())
    assert cfg["attr"] == "mouth_open" and cfg["image_size"] == 32
    assert checkpoint_steps(workdir) == [2, 4]
    assert "TRAINING ON THE CPU" in r.stderr  # the one notice without a file
    assert logged_steps(workdir)[0][-1] == 4
    assert "step 4/4 (100 %) |" in r.stderr and "ETA 0:00:00" in r.stderr  # the progress line's total and ETA
    tags, images = set(), 0
    for ev in (workdir / "tensorboard").glob("events.out.tfevents.*"):
        for e in tf.compat.v1.train.summary_iterator(str(ev)):
            for v in e.summary.value:
                tags.add(v.tag)
                images += v.tag.startswith("edits/")
    for term in ("g_loss", "d_loss", "vae", "kl", "reconstruction", "gan", "id", "cycle", "mask", "d_accuracy"):
        assert f"train/{term}" in tags
    assert images >= 2  # at start and at step 3
    for name in ("attribute_accuracy", "background_psnr", "reconstruction_psnr", "fidelity"):
        assert f"eval/{name}" in tags, name
    assert logged_steps(workdir, "eval/attribute_accuracy") == [[0, 2, 4]]
    assert (tmp_path / "classifier" / "classifier.json").exists()  # trained once, kept for reuse
    # the time-to-quality curve: every evaluation, against steps and wall time; a resume continues it
    curve = json.loads((workdir / "eval" / "curve.json").read_text())
    assert [h["step"] for h in curve] == [0, 2, 4]
    r = run(train_cmd(workdir, synth, "--config.train_steps=6", "--config.checkpoint_every=2",
                      "--config.eval.every=2", "--config.eval.batch=4",
                      f"--config.eval.classifier_dir={tmp_path / 'classifier'}"))
    assert r.returncode == 0, r.stderr[-3000:]
    curve = json.loads((workdir / "eval" / "curve.json").read_text())
    assert [h["step"] for h in curve] == [0, 2, 4, 6]
    seconds = [h["seconds"] for h in curve]
    assert seconds == sorted(seconds) and seconds[-1] > seconds[2]
    assert all(0.0 <= h["attribute_accuracy_plus"] <= 1.0 for h in curve if h["attribute_accuracy_plus"] is not None)
    png = cv2.imread(str(workdir / "eval" / "curve.png"))
    assert png is not None and png.shape[1] > png.shape[0] > 100


def test_kill_9_then_rerun_resumes_from_the_last_checkpoint(tmp_path, synth):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(train_cmd(workdir, synth, "--config.train_steps=10000", "--config.checkpoint_every=2"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 180
        while time.time() < deadline and (not checkpoint_steps(workdir) or checkpoint_steps(workdir)[-1] < 4):
            time.sleep(0.5)
        assert checkpoint_steps(workdir), "no checkpoint written in time"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    last = checkpoint_steps(workdir)[-1]
    r = run(train_cmd(workdir, synth, f"--config.train_steps={last + 4}", "--config.checkpoint_every=2"))
    assert r.returncode == 0, r.stderr[-3000:]
    assert checkpoint_steps(workdir)[-1] == last + 4
    resumed = logged_steps(workdir)[-1]
    assert (resumed[0], resumed[-1]) == (last + 1, last + 4)  # the step count continues from ckpt-<last>


def test_resuming_with_other_settings_is_refused(tmp_path, synth):
    workdir = tmp_path / "run"
    assert run(train_cmd(workdir, synth, "--config.train_steps=2", "--config.checkpoint_every=2")).returncode == 0
    r = run(train_cmd(workdir, synth, "--config.train_steps=4", "--config.width=0.125"))
    assert r.returncode == 2
    assert "width" in r.stderr and "new --workdir" in r.stderr
