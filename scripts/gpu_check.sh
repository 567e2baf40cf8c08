#!/usr/bin/env bash
# One short, prepared check for a machine with a GPU (issue: scale and speed). Under 5 minutes on
# one H100/H200; prints one table. Run from the repository root after `pip install -e ".[dev]"`:
#
#     bash scripts/gpu_check.sh            # on the GPU machine; results also under $OUT (or /tmp/gpu_check)
#     GPU_CHECK_TINY=1 bash scripts/gpu_check.sh   # the same steps at toy sizes, to try it on a CPU
#
# 1. python -m maae_tf.bench: the celeba config at 128 px, batch 64, full width, in float32 and in
#    the mixed precision precision=auto picks (FLOPs, matmul peaks, ms/step, pairs/s, share of peak)
# 2. 50 training steps of the same networks on a freshly built synthetic set (tf.data, checkpoints)
# 3. an export of that run and the serving benchmark on it
set -euo pipefail
OUT="${OUT:-/tmp/gpu_check}"
mkdir -p "$OUT"
export TF_CPP_MIN_LOG_LEVEL=2
SIZE=128 BATCH=64 WIDTH=1.0 STEPS=50 NUM=1200 BSTEPS=10 SBATCH=32 LOG=10
if [[ "${GPU_CHECK_TINY:-0}" == "1" ]]; then SIZE=32 BATCH=4 WIDTH=0.0625 STEPS=4 NUM=60 BSTEPS=2 SBATCH=4 LOG=1; fi
start=$(date +%s)

python -m maae_tf.bench --config=configs/celeba.py --image_size=$SIZE --batch=$BATCH --width=$WIDTH \
    --precision=float32,auto --steps=$BSTEPS --pipeline_batches=0 --torch_python= --json > "$OUT/bench.json"

rm -rf "$OUT/run" "$OUT/models"
python -m maae_tf.train --attr=mouth_open --config=configs/quickstart.py --workdir="$OUT/run" \
    --config.data_dir="$OUT/synthetic" --config.synthetic.num=$NUM --config.image_size=$SIZE \
    --config.width=$WIDTH --config.batch_size=$BATCH --config.train_steps=$STEPS --config.checkpoint_every=$STEPS \
    --config.log_every=$LOG --config.image_every=0 --config.precision=auto > "$OUT/train.log" 2>&1
python -m maae_tf.export --workdir="$OUT/run" --out="$OUT/models" > "$OUT/export.log" 2>&1
python benchmarks/serving_bench.py --workdir="$OUT/run" --batch=$SBATCH --latency_calls=20 --throughput_calls=3 \
    --json > "$OUT/serving.json" 2> "$OUT/serving.log"

python - "$OUT" "$start" "$SBATCH" <<'PY'
import json, re, sys, time
out, start, sbatch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
b = json.load(open(f"{out}/bench.json"))
s = json.loads(open(f"{out}/serving.json").read().strip().splitlines()[-1])["results"]
log = open(f"{out}/train.log").read()
last = re.findall(r"step (\d+) \|.*?\| ([\d.]+) ms/step, ([\d.]+) pairs/s", log)
print(f"GPU check on {b['device']}: {b['size']} px, batch {b['batch']}, width {b['width']}; "
      f"step {b['step_gflop']:.1f} GFLOP; matmul peak fp32 {b['matmul_peak_gflops']:.0f}, bf16 {b['matmul_peak_bf16_gflops']:.0f} GFLOP/s")
print("| what | ms | pairs or images /s | GFLOP/s | share of peak |")
print("|---|---|---|---|---|")
for r in b["runs"]:
    print(f"| train step, {r['precision']} (bench) | {r['ms_per_step']:.1f} | {r['pairs_per_s']:.1f} | {r['achieved_gflops']:.0f} | {100 * r['share_of_peak']:.0f} % |")
if last:
    step, ms, pps = last[-1]
    print(f"| train command, step {step} (tf.data, auto precision) | {float(ms):.1f} | {float(pps):.1f} | | |")
for k, r in s.items():
    print(f"| serving {k}: p50 at batch 1, images/s at batch {sbatch} | {r['p50_ms']:.1f} | {r['images_per_s']:.1f} | | |")
print(f"total {time.time() - start:.0f} s; files in {out}")
PY
