"""Errors rfy raises on purpose, each with a message a reader can act on.

The command line prints any of them as one ``error: <what>, <allowed or what to do>`` line and
exits with status 2 (``rfy.cli.USER_ERRORS``).
"""


class ConfigError(ValueError):
    """A configuration field, option or setting has a value outside the allowed ones."""


class DatasetNotAvailableError(FileNotFoundError):
    """A dataset's files are neither cached nor downloadable right now."""


class ChecksumError(OSError):
    """A downloaded or cached file does not have the sha256 the registry expects."""


class CorruptFileError(OSError):
    """A file rfy wrote earlier (checkpoint, ``state.json``, run record, image cache) cannot be used.

    The message names the file and says how to start over.
    """
