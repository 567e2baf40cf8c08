"""Faults and careless inputs, each injected here: a deleted checkpoint state file, a
truncated checkpoint, a user-named empty data folder, a damaged TFRecord shard, a truncated JPEG,
a resume with other settings, a train_steps that is not a multiple of checkpoint_every. Each test
checks the exit code, the one line that names the file or flag, and that nothing the user had
changed (file hashes before and after). Run them alone with `python -m pytest -m faults`."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from conftest import write_run, write_tiny_celeba  # noqa: E402  (tests/ is on sys.path under pytest)

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
TINY = ["--attr=mouth_open", "--config=configs/quickstart.py", "--config.image_size=32", "--config.width=0.0625",
        "--config.batch_size=2", "--config.log_every=1", "--config.image_every=0", "--config.eval.every=0"]


def run(module, *args, timeout=300):
    """`python -m MODULE ARGS`, or `python SCRIPT ARGS` for a script's path (benchmarks/...)."""
    command = [module] if module.endswith(".py") else ["-m", module]
    return subprocess.run([sys.executable, *command, *map(str, args)], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def train(workdir, data_dir, *extra):
    return run("maae_tf.train", f"--workdir={workdir}", *TINY, f"--config.data_dir={data_dir}", *extra)


def digests(folder) -> dict:
    """{relative path: sha256} of every file under `folder`."""
    folder = Path(folder)
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def error_line(r) -> str:
    """The one `error:` line of a command that refused (exit 2, no traceback)."""
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, r.stderr[-3000:]
    return lines[0]


def truncate(path, keep: float = 0.5) -> None:
    os.truncate(path, int(os.path.getsize(path) * keep))


def steps(workdir) -> list[int]:
    return sorted(int(p.name[len("ckpt-"):-len(".index")]) for p in Path(workdir, "checkpoints").glob("ckpt-*.index"))


@pytest.fixture(scope="module")
def run7(tmp_path_factory, tiny_celeba):
    """A run trained with train_steps=7, checkpoint_every=5 (item 7), and its stderr; copy it before changing it."""
    workdir = tmp_path_factory.mktemp("run7") / "run"
    r = train(workdir, tiny_celeba, "--config.train_steps=7", "--config.checkpoint_every=5")
    assert r.returncode == 0, r.stderr[-3000:]
    return workdir, r.stderr


def copy_run(run7, tmp_path) -> Path:
    return Path(shutil.copytree(run7[0], tmp_path / "run"))


# ---------------------------------------------------------------------------------- item 7
def test_train_steps_not_a_multiple_of_checkpoint_every_trains_exactly_that(run7):
    workdir, stderr = run7
    assert "training steps 0 -> 7" in stderr
    assert "step 7/7 (100 %) |" in stderr and "step 8/" not in stderr
    assert steps(workdir) == [5, 7]
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-7")


# ---------------------------------------------------------------------------------- item 2
def test_missing_state_file_resumes_from_the_newest_checkpoint(run7, tmp_path, tiny_celeba):
    workdir = copy_run(run7, tmp_path)
    (workdir / "checkpoints" / "checkpoint").unlink()
    before = digests(workdir / "checkpoints")
    r = train(workdir, tiny_celeba, "--config.train_steps=7", "--config.checkpoint_every=5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (f"{workdir / 'checkpoints' / 'checkpoint'} is missing: resumed from ckpt-7, the newest of the "
            "checkpoints there (ckpt-5, ckpt-7)") in r.stderr
    assert "already trained to step 7" in r.stderr  # not started over from step 0
    after = digests(workdir / "checkpoints")
    assert {k: after[k] for k in before} == before
    assert tf.train.latest_checkpoint(str(workdir / "checkpoints")).endswith("ckpt-7")  # the state file is back


def test_no_checkpoint_that_restores_stops_naming_them(run7, tmp_path, tiny_celeba):
    workdir = copy_run(run7, tmp_path)
    (workdir / "checkpoints" / "checkpoint").unlink()
    for n in (5, 7):
        truncate(workdir / "checkpoints" / f"ckpt-{n}.data-00000-of-00001")
    before = digests(workdir)
    line = error_line(train(workdir, tiny_celeba, "--config.train_steps=9", "--config.checkpoint_every=5"))
    assert "2 checkpoints are damaged" in line and "ckpt-7.data-00000-of-00001" in line
    assert "ckpt-5.data-00000-of-00001" in line and "no older checkpoint restores" in line
    assert digests(workdir) == before


# ---------------------------------------------------------------------------------- item 4
def test_train_falls_back_past_a_truncated_checkpoint_and_keeps_it(run7, tmp_path, tiny_celeba):
    workdir = copy_run(run7, tmp_path)
    ckpts = workdir / "checkpoints"
    truncate(ckpts / "ckpt-7.data-00000-of-00001")
    before = digests(ckpts)
    r = train(workdir, tiny_celeba, "--config.train_steps=7", "--config.checkpoint_every=5")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (f"checkpoint {ckpts / 'ckpt-7'} is damaged (ckpt-7.data-00000-of-00001: Read less bytes than "
            f"requested): resumed from ckpt-5, the newest checkpoint that restores") in r.stderr
    assert "training steps 5 -> 7" in r.stderr
    after = digests(ckpts)
    assert after["ckpt-5.index"] == before["ckpt-5.index"]
    assert after["ckpt-5.data-00000-of-00001"] == before["ckpt-5.data-00000-of-00001"]
    for name in ("ckpt-7.index", "ckpt-7.data-00000-of-00001"):  # set aside, byte for byte
        assert after[f"damaged/{name}"] == before[name]
    assert steps(workdir) == [5, 7]


@pytest.fixture()
def damaged_run(tmp_path):
    """A run with ckpt-3 and ckpt-5 whose ckpt-5 data file is cut in half."""
    import keras

    from maae_tf.model.maae import checkpoint

    workdir, model = write_run(tmp_path / "run", "mouth_open", step=3)
    model.g_optimizer.iterations.assign(5)
    manager = tf.train.CheckpointManager(checkpoint(model), str(workdir / "checkpoints"), max_to_keep=3)
    manager.save(checkpoint_number=5)
    keras.backend.clear_session()
    truncate(workdir / "checkpoints" / "ckpt-5.data-00000-of-00001")
    return workdir


def test_loader_names_the_damaged_checkpoint_and_the_older_ones(damaged_run):
    from maae_tf.model.maae import load_from_workdir

    with pytest.raises(ValueError, match=r"ckpt-5 is damaged \(ckpt-5.data-00000-of-00001: Read less bytes "
                                         r"than requested\); older checkpoints there: ckpt-3"):
        load_from_workdir(str(damaged_run))


@pytest.mark.parametrize("command", ["export", "evaluate"])
def test_export_and_evaluate_refuse_a_damaged_checkpoint(damaged_run, tmp_path, command):
    before = digests(damaged_run)
    if command == "export":
        r = run("maae_tf.export", f"--workdir={damaged_run}", f"--out={tmp_path / 'models'}")
    else:
        r = run("maae_tf.evaluate", f"--workdir={damaged_run}")
    line = error_line(r)
    assert f"{damaged_run / 'checkpoints' / 'ckpt-5'} is damaged (ckpt-5.data-00000-of-00001" in line
    assert "older checkpoints there: ckpt-3" in line
    assert digests(damaged_run) == before
    assert not (tmp_path / "models").exists() and not (damaged_run / "eval").exists()


# ---------------------------------------------------------------------------------- item 6
def test_a_failed_resume_leaves_the_saved_config_alone(run7, tmp_path, tiny_celeba):
    workdir = copy_run(run7, tmp_path)
    (workdir / "config.json").unlink()
    before = digests(workdir)
    line = error_line(train(workdir, tiny_celeba, "--config.train_steps=9", "--config.width=0.125"))
    assert f"checkpoint {workdir / 'checkpoints' / 'ckpt-7'} does not fit the model of this config" in line
    assert "start a new --workdir" in line
    assert digests(workdir) == before  # no config.json with the new width


# ---------------------------------------------------------------------------------- item 3
def test_quickstart_does_not_fill_a_user_named_folder(tmp_path):
    empty = tmp_path / "celeba"
    empty.mkdir()
    r = run("maae_tf.train", "--attr=mouth_open", "--config=configs/quickstart.py", f"--config.data_dir={empty}",
            f"--workdir={tmp_path / 'run'}")
    line = error_line(r)
    assert str(empty) in line and "img_align_celeba/" in line and "list_attr_celeba.txt" in line
    assert "expected the CelebA release layout" in r.stderr
    assert "built only in data/synthetic" in r.stderr
    assert list(empty.iterdir()) == [] and not (tmp_path / "run").exists()


def test_quickstart_builds_the_synthetic_set_only_at_its_default_place(tmp_path, monkeypatch):
    from maae_tf.training import loop as train_lib
    from maae_tf.config import SYNTHETIC_DIR

    sys.path.insert(0, str(REPO / "configs"))
    try:
        import quickstart
    finally:
        sys.path.remove(str(REPO / "configs"))
    monkeypatch.chdir(tmp_path)
    cfg = quickstart.get_config()
    cfg.synthetic.num = 8
    cfg.data_dir = "data/synthtic"  # mistyped: an error, nothing built
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train_lib.prepare_data(cfg)
    assert not (tmp_path / "data").exists()
    cfg.data_dir = SYNTHETIC_DIR
    train_lib.prepare_data(cfg)
    assert len(list((tmp_path / SYNTHETIC_DIR / "img_align_celeba").iterdir())) == 8


# ---------------------------------------------------------------------------------- item 5
def test_a_damaged_shard_is_named_with_the_command_that_rebuilds_it(tmp_path, tiny_celeba):
    from maae_tf.data import prepare, records

    out = tmp_path / "prepared"
    prepare.prepare(str(tiny_celeba), str(out), size=32, workers=1, shard_size=10)
    good = digests(out)
    shard = out / "shard-00001-of-00004.tfrecord"
    truncate(shard, 0.9)
    before = digests(out)
    line = error_line(train(tmp_path / "run", out, "--config.train_steps=2"))
    assert f"shard {shard} is damaged (cut short inside record" in line
    assert f"python -m maae_tf.data.prepare --celeba_dir=<the CelebA folder it was prepared from> --out={out} " \
           "--image_size=32 --masks=none --shard_size=10" in line
    assert digests(out) == before and not (tmp_path / "run").exists()
    # that command rewrites the damaged shard, as it was, and keeps the others
    prepare.prepare(str(tiny_celeba), str(out), size=32, workers=1, shard_size=10)
    assert digests(out) == good
    assert records.check_prepared(str(out))["total"] == 40


def test_a_corrupt_jpeg_met_in_training_stops_naming_it(tmp_path):
    data = write_tiny_celeba(tmp_path / "celeba")
    bad = data / "img_align_celeba" / "000003.jpg"  # a training image, positive
    truncate(bad)
    before = digests(data)
    # 12 positives, 2 a step: the file is read within the first 6 steps
    line = error_line(train(tmp_path / "run", data, "--config.train_steps=20", "--config.checkpoint_every=50"))
    assert f"{bad}: corrupt JPEG file" in line and "training stopped" in line
    assert digests(data) == before


# ---------------------------------------------------------------------------------- full disk
def test_a_full_disk_stops_training_with_one_line_and_keeps_the_checkpoints(tmp_path, monkeypatch):
    from maae_tf.training.callbacks import CheckpointNotSaved, Checkpointer
    from maae_tf.model.maae import checkpoint

    workdir, model = write_run(tmp_path / "run", "mouth_open", step=3)
    before = digests(workdir)
    manager = tf.train.CheckpointManager(checkpoint(model), str(workdir / "checkpoints"), max_to_keep=3)
    checkpointer = Checkpointer(manager, every=5)
    checkpointer.set_model(model)
    model.g_optimizer.iterations.assign(5)

    def no_space(*args, **kwargs):
        (workdir / "checkpoints" / "ckpt-5_temp").mkdir()  # what TensorFlow leaves behind
        raise tf.errors.ResourceExhaustedError(None, None, f"{{{{function_node __wrapped__SaveV2}}}} {workdir}/"
                                               "checkpoints/ckpt-5_temp/part; No space left on device [Op:SaveV2]")

    monkeypatch.setattr(manager, "save", no_space)
    with pytest.raises(CheckpointNotSaved, match=r"cannot save checkpoint .*ckpt-5 \(No space left on device\): "
                                                 r"training stopped at step 5; .* \(newest: .*ckpt-3\)"):
        checkpointer.on_train_batch_end(0)
    assert digests(workdir) == before and not (workdir / "checkpoints" / "ckpt-5_temp").exists()


# ------------------------------------------------------------------- tracebacks where a message belongs
def test_a_non_finite_loss_stops_with_one_line_and_keeps_the_checkpoints(run7, tmp_path, tiny_celeba):
    workdir = copy_run(run7, tmp_path)
    before = digests(workdir / "checkpoints")
    # a NaN loss at step 9 (resuming 7 -> 12, checkpoints at 10 and 12), injected into the logs the monitor reads
    inject = ("import runpy, sys\n"
              "from maae_tf.training import callbacks\n"
              "seen = callbacks.TrainMonitor.on_train_batch_end\n"
              "def nan_at_9(self, batch, logs=None):\n"
              "    logs = dict(logs or {})\n"
              "    if callbacks.global_step(self.model) == 9:\n"
              "        logs['g_loss'] = float('nan')\n"
              "    return seen(self, batch, logs)\n"
              "callbacks.TrainMonitor.on_train_batch_end = nan_at_9\n"
              "sys.argv = sys.argv[1:]\n"
              "runpy.run_module('maae_tf.train', run_name='__main__', alter_sys=True)\n")
    r = subprocess.run([sys.executable, "-c", inject, "maae_tf.train", f"--workdir={workdir}", *TINY,
                        f"--config.data_dir={tiny_celeba}", "--config.train_steps=12", "--config.checkpoint_every=5"],
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 3, r.stderr[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert lines == ["error: loss term 'g_loss' is nan at step 9; training stopped without saving this state (the "
                     "last checkpoint is the last good one). Try a lower learning_rate, or precision='float32'."]
    assert digests(workdir / "checkpoints") == before and steps(workdir) == [5, 7]


@pytest.mark.parametrize("key", ["checkpoint_every", "keep_checkpoints"])
def test_a_zero_bookkeeping_setting_is_refused_naming_the_key(tmp_path, tiny_celeba, key):
    workdir = tmp_path / "run"
    line = error_line(train(workdir, tiny_celeba, "--config.train_steps=2", f"--config.{key}=0"))
    assert line.startswith(f"error: {key} must be ") and line.endswith("got 0")
    assert "max_to_keep" not in line
    assert not workdir.exists()  # refused before anything is written: no config.json


@pytest.mark.parametrize("module", ["maae_tf.train", "maae_tf.bench", "benchmarks/serving_bench.py"])
def test_a_missing_config_file_is_named(tmp_path, module):
    before = digests(REPO / "configs")
    workdir = [] if module == "maae_tf.bench" else [f"--workdir={tmp_path / 'run'}"]
    line = error_line(run(module, "--config=configs/nope.py", *workdir))
    assert line.startswith("error: --config=configs/nope.py: no such config file")
    assert "quickstart.py" in line  # the configs there
    assert digests(REPO / "configs") == before and not (tmp_path / "run").exists()


@pytest.mark.parametrize("config", [None, "configs/quickstart.py"])
def test_a_misspelt_config_key_is_named_with_the_closest_valid_key(tmp_path, config):
    args = ([f"--config={config}"] if config else []) + ["--config.batchsize=4", f"--workdir={tmp_path / 'run'}"]
    line = error_line(run("maae_tf.train", *args))
    assert line.startswith("error: --config.batchsize: ") and "has no key 'batchsize'" in line
    assert line.endswith("did you mean --config.batch_size?")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("module", ["maae_tf.train", "maae_tf.export"])
def test_an_argument_that_is_no_flag_is_named(tmp_path, module):
    """A stray word (a flag without its dashes, a path given as an argument) stops the command in
    one line before anything is written; edit, client and demo --bench take photos instead."""
    line = error_line(run(module, f"--workdir={tmp_path / 'run'}", "attr=mouth_open", "photo.jpg"))
    assert line == "error: unexpected arguments: attr=mouth_open photo.jpg"
    assert not (tmp_path / "run").exists()


def test_an_unknown_attribute_under_by_attribute_is_named(tmp_path):
    config = tmp_path / "misspelt.py"
    config.write_text("from maae_tf.config import base_config\n\n\ndef get_config():\n"
                      "    c = base_config()\n    c.by_attribute = {'blond_hiar': {'width': 0.5}}\n    return c\n")
    line = error_line(run("maae_tf.train", f"--config={config}", f"--workdir={tmp_path / 'run'}"))
    assert line.startswith("error: by_attribute.blond_hiar: unknown attribute 'blond_hiar'")
    assert "blond_hair" in line and "mouth_open" in line  # the known names
    assert not (tmp_path / "run").exists()


def test_a_misspelt_nested_config_key_is_named():
    from maae_tf.config import describe_config_flag_error

    message = describe_config_flag_error(["train", "--config", "configs/quickstart.py", "--config.loss.alphaid=2"],
                                         "configs/celeba.py", "config", KeyError("alphaid"))
    assert message == ("--config.loss.alphaid: configs/quickstart.py has no key 'loss.alphaid'; "
                       "did you mean --config.loss.alpha_id?")


def prepare_cli(data, out):
    return run("maae_tf.data.prepare", f"--celeba_dir={data}", f"--out={out}", "--image_size=32", "--workers=1",
               "--shard_size=10")


def test_prepare_refuses_an_existing_file_as_out(tmp_path, tiny_celeba):
    out = tmp_path / "notes.txt"
    out.write_text("the user's file\n")
    line = error_line(prepare_cli(tiny_celeba, out))
    assert line == f"error: --out={out} is an existing file, not a folder: give a new or empty folder"
    assert out.read_text() == "the user's file\n" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_prepare_refuses_a_folder_of_other_files(tmp_path, tiny_celeba):
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"\xff\xd8\xff not really")
    (out / "sub").mkdir()
    before = digests(out)
    line = error_line(prepare_cli(tiny_celeba, out))
    assert line.startswith(f"error: --out={out} is a folder of other files (holiday.jpg, sub), not a preparation")
    assert digests(out) == before and sorted(os.listdir(out)) == ["holiday.jpg", "sub"]


def test_a_second_prepare_into_the_same_folder_stops_at_once(tmp_path, tiny_celeba):
    import fcntl

    from maae_tf.data import prepare

    out = tmp_path / "prepared"
    prepare.prepare(str(tiny_celeba), str(out), size=32, workers=1, shard_size=10)
    (out / "shard-00002-of-00004.tfrecord").unlink()  # a run still to do: the first prepare's work
    before = digests(out)
    with open(out / prepare.LOCK, "a") as held:  # the first prepare, still running, holds the lock
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        line = error_line(prepare_cli(tiny_celeba, out))
        assert line == (f"error: another prepare is writing into {out} (it holds {out / prepare.LOCK}): wait for it "
                        "to finish, or give another --out")
        assert digests(out) == before  # the loser touched nothing
    # lock released (the first prepare ended): the same command finishes the folder
    r = prepare_cli(tiny_celeba, out)
    assert r.returncode == 0, r.stderr[-3000:]
    assert (out / "shard-00002-of-00004.tfrecord").exists()


@pytest.mark.parametrize("flag, message", [
    ("--delta=nan", "error: --delta must be a finite number, got nan"),
    ("--attr=mouth_open=inf", "error: --attr 'mouth_open=inf': the strength must be a finite number, got inf"),
    ("--attr=mouth_open=abc", "error: --attr 'mouth_open=abc': 'abc' is not a number"),
])
def test_edit_checks_the_strength_before_the_model_loads(tmp_path, flag, message):
    import cv2
    import numpy as np

    photo = tmp_path / "photo.jpg"
    cv2.imwrite(str(photo), np.full((64, 64, 3), 128, np.uint8))
    before = digests(tmp_path)
    # no model at --model: a refusal that names the flag was made before loading it
    line = error_line(run("maae_tf.edit", photo, f"--model={tmp_path / 'no_model'}", flag, "-o", tmp_path / "out"))
    assert line == message
    assert digests(tmp_path) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["abc", "3,x", "nan"])
def test_serving_client_names_a_bad_delta(tmp_path, value):
    photo = tmp_path / "in.jpg"
    photo.write_bytes(b"not read: the flag is refused first")
    # no server at this address: the refusal comes before any connection
    line = error_line(run("maae_tf.serving.client", "--server=127.0.0.1:9", "--model=m", f"--delta={value}",
                          photo, "-o", tmp_path / "out.jpg", timeout=120))
    assert line.startswith("error: --delta must be ") and repr(value) in line
    assert sorted(os.listdir(tmp_path)) == ["in.jpg"]
