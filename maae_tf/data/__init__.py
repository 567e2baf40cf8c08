"""Data: the CelebA release reader and TFRecord shards, preparation, the synthetic face set,
face detection and alignment, and the background-mask sources."""
