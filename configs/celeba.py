"""The paper's settings on CelebA (paper §4.1): 128 px, batch 64 pairs, full widths.

    python -m maae_tf.train --attr=mouth_open --config=configs/celeba.py \
        --config.data_dir=/data/celeba --workdir=runs/mouth_open
"""
from maae_tf.config import base_config


def get_config():
    c = base_config()
    # editing accuracy and background PSNR of 32 held-out test images every 2,000 steps
    # (TensorBoard eval/..., the progress line): edits that stop working show early
    c.eval.every = 2000
    return c
