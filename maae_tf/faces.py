"""`python -m maae_tf.faces --measure FOLDER`: cross-checks face detection and alignment on
already aligned CelebA photos (maae_tf/data/faces.py `measure`)."""

import sys

from maae_tf.data.faces import measure


def run() -> None:
    if len(sys.argv) != 3 or sys.argv[1] != "--measure":
        raise SystemExit("usage: python -m maae_tf.faces --measure FOLDER_OF_ALIGNED_CELEBA_JPEGS")
    measure(sys.argv[2])


if __name__ == "__main__":
    run()
