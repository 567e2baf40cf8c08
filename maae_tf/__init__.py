"""maae_tf: the M-AAE face attribute editor (Sun et al., "Mask-aware Photorealistic Face
Attribute Manipulation", CVM 2021) in TensorFlow 2.21 / Keras 3.

Folders by layer, each importing only the layers before it in this list (tests/test_layers.py):
  attributes, files, config   attribute names, atomic writes, a run's settings and config.json
  model/        the lattice M, the networks, the losses, MAAE and its train_step, dtype policies
  data/         CelebA files and TFRecord shards, preparation, synthetic faces, alignment, masks
  evaluation/   the attribute classifier, identity metric, scores, evaluators, figures
  training/     the training loop, callbacks, tf.distribute, the check of a run's settings
  serving/      SavedModel export, TF Serving client, what serving costs
  photos/       editing faces in photos, head masks, the web demo
  the commands  python -m maae_tf.<command>: train, evaluate, diagnose, export, edit, demo, faces,
                face_identity, train_classifier, train_identity, bench, prepare, synthetic,
                segmenter, evaluate_masks, client: each defines its absl flags at module level (the
                library modules define none) and its `main` makes one library call
"""

import os

# TensorFlow leaves oneDNN off by itself on some CPUs; on an AVX2-only EPYC it halves the
# training step (1,527 -> 733 ms, docs/stack.md). Set before TensorFlow is imported; a user's
# own TF_ENABLE_ONEDNN_OPTS wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
