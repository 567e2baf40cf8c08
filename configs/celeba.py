"""The paper's settings on CelebA (paper §4.1): 128 px, batch 64 pairs, full widths.

    python -m maae_tf.train --attr=mouth_open --config=configs/celeba.py \
        --config.data_dir=/data/celeba --workdir=runs/mouth_open
"""
from maae_tf.config import base_config


def get_config():
    return base_config()
