"""The book's chapters that have runnable experiments, by the slug the CLI and run records use.

Each chapter module exposes ``Config`` (a ``RunConfig``), ``PAPER_NUMBERS`` (the paper's
reported values and our metric keys) and ``run_experiment(config, state) -> dict[str, float]``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from rfy.errors import ConfigError

CHAPTER_MODULES = {
    "neural-ode": "rfy.neural_ode",
    "semi-unsupervised": "rfy.semi_unsupervised",
    "debiasing": "rfy.debiasing",
    "preferences": "rfy.preferences",
    "randwire": "rfy.randwire",
    "voters": "rfy.voters",
    "mixmatch": "rfy.mixmatch",
    "divide-conquer": "rfy.divide_conquer",
}

CHAPTER_TITLES = {
    "neural-ode": "1. Neural ordinary differential equations",
    "semi-unsupervised": "2. Semi-unsupervised learning (GM-DGM against M2)",
    "debiasing": "3. Debiasing with learned latent structure (DB-VAE)",
    "preferences": "4. Deep reinforcement learning from human preferences",
    "randwire": "5. Randomly wired neural networks",
    "voters": "6. Photofeeler-D3: modelling the voters",
    "mixmatch": "7. MixMatch",
    "divide-conquer": "8. Divide and conquer the embedding space",
}

BENCHMARKS = ("mixmatch",)  # chapters whose module has ``benchmark(device=…, steps=…, batch_size=…)``


def chapter_module(slug: str) -> ModuleType:
    """Import the module of chapter ``slug``; an unknown slug names the allowed ones."""
    if slug not in CHAPTER_MODULES:
        raise ConfigError(f"chapter must be one of {tuple(CHAPTER_MODULES)}, got {slug!r}")
    return importlib.import_module(CHAPTER_MODULES[slug])
