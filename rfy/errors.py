"""Errors rfy raises on purpose, each with a message a reader can act on."""


class ConfigError(ValueError):
    """A configuration field has a value outside the allowed ones."""


class DatasetNotAvailableError(FileNotFoundError):
    """A dataset's files are neither cached nor downloadable right now."""


class ChecksumError(OSError):
    """A downloaded or cached file does not have the sha256 the registry expects."""
