"""Photos: editing the faces of ordinary photos (`python -m maae_tf.edit`), the head masks the
edit is blended under, and the web demo (`python -m maae_tf.demo`)."""
