"""maae_tf: the M-AAE face attribute editor (Sun et al., "Mask-aware Photorealistic Face
Attribute Manipulation", CVM 2021) in TensorFlow 2.21 / Keras 3.

Modules, one job each:
  attributes      CelebA's 40 attribute names and their snake_case aliases
  config          the schema of a run's settings (configs/*.py start from it)
  lattice         the partial dilated layer: the minimal latent lattice M (paper §3.2)
  models/         encoder, decoder, discriminator, identity network (paper Table 1)
  losses          the five loss terms (paper Eqs. 1-6) and the G/D adversarial pairs
  maae            MAAE(keras.Model): G(x, δ) = De(En(x) + δ·M) and its train_step
  data/           the CelebA-layout reader, TFRecord preparation and the synthetic face set
  masks/          background-mask sources and their evaluation
  precision, distribute    mixed precision policies; tf.distribute strategies and the custom loop
  callbacks       progress line, TensorBoard, in-training evaluation, checkpoints
  classifier      the dataset's independent attribute classifier (evaluation protocol)
  scoring         per-image scores of a run's edits (shared by evaluate and training)
  metrics         PSNR, SSIM, L1 on masks; sweep monotonicity
  face_identity   identity preservation by an independent face recogniser (dlib, or F_ID)
  diagnose        where a run's forces go: G's gradient per term, D's heads, where the edit acts
  export, serving/, edit, faces   SavedModel export, TF Serving client, editing photos
  train, evaluate, diagnose, train_classifier, train_identity, bench, export, edit, face_identity
                  the commands (python -m maae_tf.<command>)
"""

__version__ = "0.1.0"
