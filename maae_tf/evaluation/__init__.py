"""Evaluation: the independent attribute classifier, the identity metric, per-image scores and
image metrics, the evaluators behind `python -m maae_tf.evaluate`, diagnosis and figures."""
