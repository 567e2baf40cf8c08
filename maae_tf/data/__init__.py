"""Data: one pipeline (`pipeline`) over two sources, the CelebA release files (`layout`, `celeba`)
and their prepared TFRecord shards (`records`, `shards`, written by `prepare`), with one split rule
(`splits`) and one crop rule (`crop`); the synthetic face set, face detection and alignment, and
the background-mask sources."""
