"""Read For You: runnable companion code for 2019 machine-learning papers, one chapter each.

Shared machinery lives here once (configs, seeding, devices, data, run records, progress,
plotting); each chapter is a sub-package such as ``rfy.neural_ode``.
"""
from rfy.config import RunConfig
from rfy.errors import ChecksumError, ConfigError, DatasetNotAvailableError
from rfy.runtime import seed_everything, select_device

__version__ = "0.1.0"
__all__ = ["RunConfig", "ConfigError", "DatasetNotAvailableError", "ChecksumError",
           "seed_everything", "select_device", "__version__"]
