"""maae_tf: M-AAE face attribute manipulation (Sun et al., CVM 2021) in TensorFlow 2 / Keras 3.

The package's metadata lives here alone; pyproject.toml holds the build system and the tools' settings."""
from setuptools import find_packages, setup

# Every command module maae_tf/<command>.py, installed as the console script maae-<command> (underscores
# as hyphens); tests/test_install.py checks that none is missing.
COMMANDS = ["train", "evaluate", "diagnose", "export", "edit", "demo", "client", "bench", "prepare", "synthetic",
            "segmenter", "evaluate_masks", "faces", "face_identity", "train_identity", "train_classifier"]
# maae_tf.photos.edit's face detection: dlib's HOG detector (binary wheel) and its 68- and 5-point
# landmark models (shipped in face-recognition-models, ~100 MB sdist).
FACES = ["dlib-bin>=19.24", "face-recognition-models>=0.3"]

setup(
    name="maae_tf",
    version="0.1.0",
    description="Mask-aware photorealistic face attribute manipulation (M-AAE) in TensorFlow/Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # Only the library is installed, with the repository's configs/ as maae_tf/configs (so that
    # --config=quickstart and the default config resolve wherever the package lies); serving/, export/ and
    # benchmarks/ are project files (deployment files, exported models, benchmark scripts).
    packages=find_packages(include=["maae_tf", "maae_tf.*"]) + ["maae_tf.configs"],
    package_dir={"maae_tf.configs": "configs"},
    package_data={"maae_tf.photos": ["demo_page.html"]},  # the web demo's page (python -m maae_tf.demo)
    # Upper bounds at the next major release, where an API we call may go.
    install_requires=[
        "tensorflow==2.21.*",
        "keras>=3.12,<4",  # TF 2.21's own floor
        "tensorboard>=2.21,<2.22",
        "tensorflow-serving-api==2.21.*",
        "protobuf>=6.31.1,<8",  # the serving requests' messages; TF 2.21's range
        "grpcio>=1.60,<2",
        "h5py>=3.11,<4",  # F_ID weight files (identity.source=h5); TF 2.21 caps it below 3.15
        "absl-py>=2.1,<3",
        "ml_collections>=1.0,<2",
        "numpy>=1.26,<3",
        "opencv-python-headless>=4.9,<6",  # 5.0 is what the tests run on
        "pillow>=10",  # photos with EXIF orientation, grayscale, RGBA, WebP (maae_tf.files.read_photo)
        "ai-edge-litert>=2.3,<3",  # the segmenter's TFLite runtime (tf.lite.Interpreter is deprecated)
        "matplotlib>=3.8,<4",  # eval/curve.png, the in-training evaluation against steps and wall time
    ],
    extras_require={
        "faces": FACES,
        # TensorBoard's Profile tab for `python -m maae_tf.train --profile_steps=START,END`
        "profile": ["tensorboard-plugin-profile"],
        # python -m maae_tf.demo: the page itself is the standard library's http.server (no web
        # framework); it finds faces as edit does, so it needs what "faces" brings.
        "demo": ["maae_tf[faces]"],
        # selenium drives Debian's chromium (apt: chromium chromium-driver, as .ci/run installs)
        # in tests/test_demo.py's browser test; ruff is the linter .ci/run runs; pytest-xdist runs
        # the suite on up to 4 cores (pyproject.toml's addopts)
        "dev": ["maae_tf[faces]", "pytest>=8", "pytest-xdist>=3.5", "hypothesis>=6.100", "selenium>=4.20",
                "ruff>=0.6"],
    },
    entry_points={"console_scripts": [f"maae-{c.replace('_', '-')}=maae_tf.{c}:run" for c in COMMANDS]},
)
