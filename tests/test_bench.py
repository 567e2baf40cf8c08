"""`python -m maae_tf.bench`: the analytic FLOP count (checked against the peer yardstick's
independent count when ../shared/bench is present) and the figures the command prints."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_config, tiny_spec
from maae_tf.training import bench
from maae_tf.model.maae import MAAE
from maae_tf.model.spec import ModelSpec

REPO = Path(__file__).resolve().parents[1]
YARDSTICK = REPO.parent / "shared" / "bench" / "flops.py"


@pytest.mark.skipif(not YARDSTICK.exists(), reason="../shared/bench/flops.py not present")
@pytest.mark.parametrize("size, width", [(64, 0.25), (128, 0.5)])
def test_forward_macs_equal_the_yardsticks_count(size, width):
    spec = importlib.util.spec_from_file_location("yardstick_flops", YARDSTICK)
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    m = MAAE(tiny_spec(image_size=size, width=width))  # transposed-conv decoder, as the yardstick
    for ours, theirs in ((m.encoder, ref.encoder), (m.decoder, ref.decoder), (m.discriminator, ref.disc),
                         (m.identity, ref.idnet)):
        assert bench.forward_macs(ours) == sum(macs for _, macs in theirs(size, width)), ours.name


def test_step_flops_follow_the_pass_counts():
    c = tiny_config(batch_size=3, cycle_strength="fixed", adversarial_edits="flipping")
    m = MAAE(ModelSpec.from_config(c))
    flops = bench.step_flops(m, c)
    assert flops["encoder"] == 2 * bench.forward_macs(m.encoder) * 3 * (4 + 2 * 4)
    assert flops["decoder"] == 2 * bench.forward_macs(m.decoder) * 3 * (6 + 2 * 6)
    assert flops["discriminator"] == 2 * bench.forward_macs(m.discriminator) * 3 * (6 + 2 * 6)
    assert flops["identity"] == 2 * bench.forward_macs(m.identity) * 3 * (4 + 2 * 2)
    assert flops["total"] == sum(v for k, v in flops.items() if k != "total")
    c.cycle_strength = "random"  # two more decoder passes, forward and backward
    assert bench.step_flops(m, c)["decoder"] == 2 * bench.forward_macs(m.decoder) * 3 * (8 + 2 * 8)
    c.adversarial_edits = "all"  # G(x1, -δ0), G(x2, +δ0): two more decoder passes, two more D passes per loss
    assert bench.step_flops(m, c)["decoder"] == 2 * bench.forward_macs(m.decoder) * 3 * (10 + 2 * 10)
    assert bench.step_flops(m, c)["discriminator"] == 2 * bench.forward_macs(m.discriminator) * 3 * (10 + 2 * 10)
    up = MAAE(tiny_spec(upsample="resize"))
    assert bench.forward_macs(up.decoder) > bench.forward_macs(m.decoder)  # convs at the upsampled size


def test_bench_command_prints_every_figure(tiny_celeba):
    r = subprocess.run([sys.executable, "-m", "maae_tf.bench", "--config=configs/quickstart.py", "--image_size=32",
                        "--batch=2", "--width=0.0625", "--steps=1", "--precision=float32", "--pipeline_batches=2",
                        f"--config.data_dir={tiny_celeba}", "--torch_python=", "--json"],
                       cwd=REPO, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ("pairs_per_s", "ms_per_step", "step_gflop", "achieved_gflops", "matmul_peak_gflops",
                "matmul_peak_bf16_gflops", "share_of_peak", "pipeline_pairs_per_s"):
        assert isinstance(out[key], (int, float)) and out[key] > 0, key
    assert out["precision"] == "float32" and len(out["runs"]) == 1 and out["torch_reference"] is None
    # the printed figures are rounded (0.1 ms, 0.01 GFLOP): at this toy size that is a few percent
    assert out["achieved_gflops"] == pytest.approx(out["step_gflop"] / out["ms_per_step"] * 1000, rel=0.1)


def test_report_names_what_is_missing():
    r = {"size": 32, "batch": 2, "width": 0.0625, "upsample": "resize", "cycle_strength": "random",
         "jit_compile": False, "device": "CPU", "step_gflop": 1.0, "step_gflop_per_network": {"encoder": 1.0},
         "matmul_peak_gflops": 100.0, "matmul_peak_bf16_gflops": 200.0, "pipeline_pairs_per_s": None,
         "pipeline_source": "no dataset at data/x", "torch_reference": None,
         "torch_reference_note": "skipped (--torch_python is empty)",
         "runs": [{"precision": "float32", "ms_per_step": 10.0, "pairs_per_s": 200.0, "achieved_gflops": 100.0,
                   "share_of_peak": 1.0, "vs_torch": None}]}
    text = bench.report(r)
    assert "input pipeline: n/a (no dataset at data/x)" in text
    assert "PyTorch reference: n/a (skipped (--torch_python is empty))" in text and "| float32 | 10.0 | 200.00 | 100.0 | 100 % | n/a |" in text
