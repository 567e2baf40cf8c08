"""`python -m maae_tf.diagnose`: where a run's forces go (maae_tf/evaluation/diagnose.py)."""

from maae_tf.evaluation.diagnose import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
