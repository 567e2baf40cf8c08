"""maae_tf: M-AAE face attribute manipulation (Sun et al., CVM 2021) in TensorFlow 2 / Keras 3."""
from setuptools import find_packages, setup

setup(
    name="maae_tf",
    version="0.1.0",
    description="Mask-aware photorealistic face attribute manipulation (M-AAE) in TensorFlow/Keras 3",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # Only the library is installed: the top-level configs/, serving/, export/ and benchmarks/
    # folders are project files (config files, deployment files, exported models, benchmark
    # scripts), never site-packages names.
    packages=find_packages(include=["maae_tf", "maae_tf.*"]),
    package_data={"maae_tf.photos": ["demo_page.html"]},  # the web demo's page (python -m maae_tf.demo)
    install_requires=[
        "tensorflow==2.21.*",
        "tensorboard>=2.21,<2.22",
        "tensorflow-serving-api==2.21.*",
        "absl-py>=2.1",
        "ml_collections>=1.0",
        "opencv-python-headless>=4.9",
        "numpy>=1.26",
        "grpcio>=1.60",
        "pillow>=10",  # photos with EXIF orientation, grayscale, RGBA, WebP (maae_tf.files.read_photo)
        "matplotlib>=3.8,<4",  # eval/curve.png, the in-training evaluation against steps and wall time
    ],
    extras_require={
        # maae_tf.photos.edit's face detection: dlib's HOG detector (binary wheel) and its 68- and
        # 5-point landmark models (shipped in face-recognition-models, ~100 MB sdist).
        "faces": ["dlib-bin>=19.24", "face-recognition-models>=0.3"],
        # TensorBoard's Profile tab for `python -m maae_tf.train --profile_steps=START,END`
        "profile": ["tensorboard-plugin-profile"],
        # python -m maae_tf.demo: the page itself is the standard library's http.server (no web
        # framework); it finds faces as edit does, so it needs what "faces" brings.
        "demo": ["dlib-bin>=19.24", "face-recognition-models>=0.3"],
        # selenium drives Debian's chromium (apt: chromium chromium-driver, as .ci/run installs)
        # in tests/test_demo.py's browser test
        "dev": ["pytest>=8", "hypothesis>=6.100", "dlib-bin>=19.24", "face-recognition-models>=0.3",
                "selenium>=4.20"],
    },
    entry_points={
        "console_scripts": [
            "maae-train=maae_tf.train:run",
            "maae-evaluate=maae_tf.evaluate:run",
            "maae-diagnose=maae_tf.diagnose:run",
            "maae-synthetic=maae_tf.synthetic:run",
            "maae-prepare=maae_tf.prepare:run",
            "maae-train-identity=maae_tf.train_identity:run",
            "maae-bench=maae_tf.bench:run",
            "maae-export=maae_tf.export:run",
            "maae-client=maae_tf.client:run",
            "maae-edit=maae_tf.edit:run",
            "maae-demo=maae_tf.demo:run",
        ]
    },
)
