"""Training: the loop behind `python -m maae_tf.train`, its callbacks, tf.distribute strategies and
the check of a run's settings."""
