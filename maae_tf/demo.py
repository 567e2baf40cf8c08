"""`python -m maae_tf.demo`: a web page that edits a photo (maae_tf/photos/demo.py)."""

from maae_tf.photos.demo import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
