"""Install swish_tf: the activation-function search of "Searching for Activation Functions"."""

import setuptools

setuptools.setup(
    name="swish_tf",
    version="0.1.0",
    description=(
        "TensorFlow/Keras reimplementation of 'Searching for Activation Functions' "
        "(Ramachandran, Zoph and Le, 2017)."
    ),
    packages=setuptools.find_packages(include=["swish_tf*", "models*", "search*"]),
    python_requires=">=3.10",
    install_requires=[
        # TensorFlow itself comes from an extra, so that CPU-only machines can take the
        # small tensorflow-cpu wheel and GPU machines tensorflow[and-cuda].
        "keras>=3.10",
        "absl-py>=2.0",
        "gin-config>=0.5",
        "numpy>=1.26",
        "tensorflow-datasets>=4.9",
        "matplotlib>=3.8",
        "sacrebleu>=2.4",
        "sentencepiece>=0.2",
        "tensorboard>=2.16",  # tf.summary needs it to write event files
        "ray>=2.40",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.18"],
        "gpu": ["tensorflow[and-cuda]>=2.18"],
        "test": ["pytest>=8"],
    },
)
