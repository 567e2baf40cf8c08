"""`python -m maae_tf.face_identity`: checks that the identity metric separates people (maae_tf/evaluation/identity.py)."""

from maae_tf.evaluation.identity import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
