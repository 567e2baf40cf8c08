"""The model: the latent lattice M, the networks, the five losses, MAAE (G(x, δ) = De(En(x) + δ·M) and
its training step), dtype policies, and the Editor that chains trained runs."""
