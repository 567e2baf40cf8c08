"""`python -m maae_tf.edit`: edits the faces in photos (maae_tf/photos/edit.py)."""

from maae_tf.photos.edit import main, run  # noqa: F401  (setup.py points its console scripts at run)

if __name__ == "__main__":
    run()
