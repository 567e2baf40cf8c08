"""`python -m maae_tf.train`: trains one attribute's network (maae_tf/training/loop.py)."""

from maae_tf.training.loop import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
