"""Install the asrtools package and its `asrtools` console script.

The pinned scientific stack (torch/torchaudio builds, lhotse, ...) is installed by
scripts/setup_env.sh; install_requires lists what the package imports, unpinned where
the set-up script pins it, so `pip install -e .` never pulls a second torch build.
"""
from setuptools import find_packages, setup

setup(
    name="asrtools",
    version="0.1.0",
    description="Streaming transducer ASR and speaker-cohort fairness experiment toolkit",
    packages=find_packages(include=["asrtools", "asrtools.*"]),
    python_requires=">=3.9",
    install_requires=[
        "torch",
        "click",
        "pyyaml",
        "numpy",
    ],
    extras_require={
        "full": [
            "torchaudio",
            "lhotse",
            "urllib3",
            "sentencepiece",
            "kaldialign",
            "scikit-learn",
            "matplotlib",
            "tensorboard",
            "soundfile",
            "tqdm",
            "lilcom",
            "jiwer",
        ]
    },
    entry_points={"console_scripts": ["asrtools=asrtools.cli:cli"]},
)
