"""tf.distribute: two logical CPUs under MirroredStrategy train to the same weights as one device
with the same global batch; two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy
(custom loop) end with identical weights; the train command under multi_worker writes only from
the chief; XLA and strategy settings fail with clear messages where they cannot work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import tensorflow as tf

from maae_tf.training import distribute

REPO = Path(__file__).resolve().parents[1]
WORKER = str(REPO / "tests" / "dist_worker.py")
# the worker runs as a script: PYTHONPATH makes it import this checkout's maae_tf, as `-m` with cwd=REPO does
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
           PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def tf_config(ports, i):
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": i}})


def weights(path):
    with np.load(path) as f:
        return [f[k] for k in sorted((k for k in f.files if k.startswith("arr_")), key=lambda k: int(k[4:]))], \
            int(f["replicas"]), float(f["g_loss"])


def max_diff(a, b):
    assert len(a) == len(b)
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b))


def assert_same_training(a, b, steps=3, lr=1e-4):
    """Two runs of the same steps from the same weights agree up to the summation order of the
    replicas' gradients (~1e-7 relative). Adam's first steps divide by |g|, so on a weight whose
    gradient is ~1e-7 that order can flip the step's sign: such weights move apart by up to one
    step, lr, per step. Measured on this test's model after 3 steps: max difference 3e-8 ... 1e-6
    on most runs; on some, 140 of 49,661 weights (0.3 %) differ by up to 1.7e-4 (with
    adversarial_edits="all", which judges twice as many edits). So: every weight within Adam's
    bound of 1.5·lr per step, and 99 % of them within 1e-5."""
    diffs = np.concatenate([np.abs(x - y).ravel() for x, y in zip(a, b)])
    assert diffs.max() <= 1.5 * lr * steps, diffs.max()
    assert np.mean(diffs > 1e-5) <= 0.01, (np.mean(diffs > 1e-5), diffs.max())


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    d = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, WORKER, "one_device", str(d / "one.npz"), str(d / "init.npz")],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return d


# The initial weights are seeded (tests/dist_worker.py); the comparison: assert_same_training.
def test_mirrored_on_two_logical_cpus_matches_one_device(one_device):
    r = subprocess.run([sys.executable, WORKER, "mirrored", str(one_device / "mirrored.npz"),
                        str(one_device / "init.npz")], capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    w1, n1, loss1 = weights(one_device / "one.npz")
    w2, n2, loss2 = weights(one_device / "mirrored.npz")
    assert (n1, n2) == (1, 2)
    assert_same_training(w1, w2)
    assert loss2 == pytest.approx(loss1, rel=1e-5)


def test_two_workers_on_localhost_end_with_identical_weights(one_device):
    ports = free_ports(2)
    procs = [subprocess.Popen([sys.executable, WORKER, "multi_worker", str(one_device / f"worker{i}.npz"),
                               str(one_device / "init.npz")], env=dict(ENV, TF_CONFIG=tf_config(ports, i)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for p in procs:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out[-3000:]
    (a, na, _), (b, nb, _) = weights(one_device / "worker0.npz"), weights(one_device / "worker1.npz")
    assert na == nb == 2
    assert max_diff(a, b) == 0.0
    assert_same_training(a, weights(one_device / "one.npz")[0])  # and the same as one device


def test_train_command_under_multi_worker_writes_only_from_the_chief(tmp_path, tiny_celeba):
    ports = free_ports(2)
    flags = ["--attr=mouth_open", "--config=configs/quickstart.py", "--config.image_size=32",
             "--config.width=0.0625", "--config.batch_size=4", "--config.train_steps=4",
             "--config.checkpoint_every=2", "--config.log_every=1", "--config.image_every=0",
             "--config.synthetic.build_if_missing=False", f"--config.data_dir={tiny_celeba}",
             "--config.strategy=multi_worker", "--config.eval.every=0"]
    workdirs = [tmp_path / "chief", tmp_path / "worker1"]
    procs = [subprocess.Popen([sys.executable, "-m", "maae_tf.train", f"--workdir={workdirs[i]}", *flags],
                              cwd=REPO, env=dict(ENV, TF_CONFIG=tf_config(ports, i)), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "strategy multi_worker: 2 replica(s)" in outs[0]
    assert sorted(int(p.name[5:-6]) for p in (workdirs[0] / "checkpoints").glob("ckpt-*.index")) == [2, 4]
    assert list((workdirs[0] / "tensorboard").glob("events.out.tfevents.*"))
    assert not workdirs[1].exists()  # the other worker wrote to a throwaway folder


def test_jit_compile_is_refused_under_mirrored_with_a_reason():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with pytest.raises(ValueError, match="jit_compile=True does not work under the mirrored strategy"):
        distribute.check_jit(strategy, True)
    distribute.check_jit(strategy, False)
    distribute.check_jit(tf.distribute.OneDeviceStrategy("/cpu:0"), True)


def test_strategy_names_and_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve("auto") == "one_device"  # CPU only, no cluster
    with pytest.raises(ValueError, match="auto, one_device, mirrored, multi_worker, tpu"):
        distribute.resolve("horovod")
    monkeypatch.setenv("TF_CONFIG", tf_config([1, 2], 0))
    assert distribute.resolve("auto") == "multi_worker"
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        distribute.tf_config()
    monkeypatch.setenv("TF_CONFIG", '{"task": {}}')
    with pytest.raises(ValueError, match='TF_CONFIG must hold "cluster" and "task"'):
        distribute.tf_config()


def test_batch_must_split_over_replicas(tmp_path, tiny_celeba):
    from conftest import tiny_config
    from maae_tf.training.loop import train

    c = tiny_config(tiny_celeba, batch_size=3)
    two_replicas = SimpleNamespace(num_replicas_in_sync=2)  # only its replica count is read first
    with pytest.raises(ValueError, match="batch_size 3 .* multiple of the 2 replicas"):
        train(c, str(tmp_path / "w"), strategy=two_replicas)
    assert not (tmp_path / "w").exists()
