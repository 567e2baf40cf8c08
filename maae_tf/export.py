"""`python -m maae_tf.export`: exports training runs as a TF Serving SavedModel (maae_tf/serving/export.py)."""

from maae_tf.serving.export import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
