"""aligner: LoRA alignment algorithms on one frozen base model, and an honest way to compare them.

`aligner.run(...)` trains one algorithm, as `aligner run` does. Every name of the public API (`aligner.api`) is
also available here: settings, errors and registration eagerly (they are light), the rest on first use, so that
listing plugins (`aligner plugins`, building the CLI) imports no torch, transformers or peft."""

import ast
import functools
from pathlib import Path

from aligner.config import CheckpointSettings, RunConfig, setting
from aligner.data.kinds import LAYOUTS, PREFERENCE, PROMPT, UNPAIRED
from aligner.errors import (AlignerError, CheckpointError, ConfigError, DatasetError, InputError, ModelLoadError,
                            RunError, TrainingError)
from aligner.hookspecs import hookimpl
from aligner.offline.settings import OfflineSettings, TRLComparableSettings
from aligner.online.settings import OnlineSettings, RewardSourceSettings
from aligner.registry import Algorithm, RewardFunction

__version__ = "0.1.0"


def run(algorithm: str, config=None, **settings) -> dict:
    """Trains `algorithm` and returns its summary (see `aligner.harness.runner.run`)."""
    from aligner.harness.runner import run as _run

    return _run(algorithm, config, **settings)


@functools.cache
def _api_value(variable: str):
    """A literal assigned in `aligner/api.py`, read from the source rather than imported, so that `from aligner
    import config` does not import the whole API (torch, transformers, peft) to find out that `config` is a
    submodule."""
    tree = ast.parse(Path(__file__).with_name("api.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == variable for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"aligner/api.py assigns no {variable}")


def _api_names() -> frozenset:
    """`aligner.api.__all__`."""
    return frozenset(_api_value("__all__"))


def __getattr__(name: str):
    import importlib

    renamed = _api_value("DEPRECATED")
    if name in renamed:  # an old public name: warn, and stay light where the new name is (settings stay torch-free)
        import warnings

        new = renamed[name]
        warnings.warn(f"aligner.{name} is deprecated: use {new} (the old name goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return globals()[new] if new in globals() else getattr(importlib.import_module("aligner.api"), new)
    if name not in _api_names():
        raise AttributeError(f"module 'aligner' has no attribute {name!r}")
    return getattr(importlib.import_module("aligner.api"), name)


def __dir__():
    return sorted({*globals(), *_api_names()})


__all__ = ["run", "__version__", "Algorithm", "RewardFunction", "hookimpl", "RunConfig", "OnlineSettings",
           "RewardSourceSettings", "CheckpointSettings", "OfflineSettings", "TRLComparableSettings", "setting",
           "AlignerError",
           "InputError", "RunError", "ConfigError", "DatasetError", "ModelLoadError", "CheckpointError",
           "TrainingError", "LAYOUTS", "PREFERENCE", "PROMPT", "UNPAIRED"]
"""Imported eagerly: the light part of the API, which plugins need just to be listed (settings, errors)."""
