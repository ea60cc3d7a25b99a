"""Every error aligner raises on purpose, in two families the CLI maps to exit codes.

`InputError` (exit code 2): what the user gave cannot work (a flag, a setting, a data row, a model folder, an
output directory, a checkpoint or reward model to load, a suite); nothing expensive has run yet, and the message
names the culprit and what to do. `RunError` (exit code 1): the run started and could not go on (non-finite values
while training); the message says where, and what was kept. Plugins raise these too, so their failures read like
the built-ins'.
"""

from __future__ import annotations


class AlignerError(Exception):
    """Base of aligner's errors; `exit_code` is what the CLI exits with."""

    exit_code = 1


class InputError(AlignerError, ValueError):
    """Bad input or settings: exit code 2."""

    exit_code = 2


class RunError(AlignerError):
    """A failure while running: exit code 1."""

    exit_code = 1


class ConfigError(InputError):
    """A setting that is unknown or has an invalid value; the message names the flag or key."""


class UsageError(InputError):
    """A command-line argument outside the settings (a CLI-only flag, a directory to list)."""


class RegistryError(InputError):
    """A name that is unknown or claimed by two plugins."""


class DatasetError(InputError):
    """Bad input data; the message names the file, row and field."""


class ModelLoadError(InputError):
    """A `--model` that names no usable model."""


class OutputDirError(InputError):
    """An output directory that is occupied, not writable, or being written by another run."""


class SuiteError(InputError):
    """A benchmark suite that cannot run as written; the message names the entry."""


class CheckpointError(InputError):
    """A checkpoint or saved model (reward model) that cannot be used for this run."""


class TrainingError(RunError):
    """Training cannot go on (non-finite values); the message says where and names the last good checkpoint."""
