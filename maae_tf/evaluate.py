"""`python -m maae_tf.evaluate`: evaluates trained runs on their test split (maae_tf/evaluation/evaluate.py)."""

from maae_tf.evaluation.evaluate import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
