"""Quickstart on the built-in synthetic face set: 64 px, narrow widths, minutes on a 2-core CPU.

    python -m maae_tf.train --attr=mouth_open --config=configs/quickstart.py --workdir=runs/quickstart

Builds the synthetic set (CelebA release layout) under data/synthetic on first use. The identity
network is random and frozen here (no download; the run warns): real runs use VGG-Face or ImageNet
weights, see configs/celeba.py.
"""
from maae_tf.config import base_config


def get_config():
    c = base_config()
    c.data_dir = "data/synthetic"
    c.synthetic.build_if_missing = True
    c.synthetic.num = 6000
    c.image_size = 64
    c.width = 0.25
    c.batch_size = 8
    c.identity.source = "random"
    c.train_steps = 1500
    c.log_every = 50
    c.image_every = 250
    c.checkpoint_every = 100
    c.eval.num_images = 400
    c.eval.classifier_steps = 600
    return c
