"""aligner: LoRA alignment algorithms on one frozen base model, and an honest way to compare them.

`aligner.run(...)` trains one algorithm, as `aligner run` does. Every name of the public API (`aligner.api`) is
also available here: settings, errors and registration eagerly (they are light), the rest on first use, so that
listing plugins (`aligner plugins`, building the CLI) imports no torch, transformers or peft."""

import ast
import functools
from pathlib import Path

from aligner.config import RunConfig, setting
from aligner.data.kinds import LAYOUTS, PREFERENCE, PROMPT, UNPAIRED
from aligner.errors import (AlignerError, CheckpointError, ConfigError, DatasetError, InputError, ModelLoadError,
                            RunError, TrainingError)
from aligner.hookspecs import hookimpl
from aligner.online_settings import OnlineSettings, RewardSettings
from aligner.registry import Algorithm, RewardFunction

__version__ = "0.1.0"


def run(algorithm: str, config=None, **settings) -> dict:
    """Trains `algorithm` and returns its summary (see `aligner.runner.run`)."""
    from aligner.runner import run as _run

    return _run(algorithm, config, **settings)


@functools.cache
def _api_names() -> frozenset:
    """`aligner.api.__all__`, read from the source rather than imported, so that `from aligner import config`
    does not import the whole API (torch, transformers, peft) to find out that `config` is a submodule."""
    tree = ast.parse(Path(__file__).with_name("api.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            return frozenset(ast.literal_eval(node.value))
    return frozenset()


def __getattr__(name: str):
    if name not in _api_names():
        raise AttributeError(f"module 'aligner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module("aligner.api"), name)


def __dir__():
    return sorted({*globals(), *_api_names()})


__all__ = ["run", "__version__", "Algorithm", "RewardFunction", "hookimpl", "RunConfig", "OnlineSettings",
           "RewardSettings", "setting",
           "AlignerError",
           "InputError", "RunError", "ConfigError", "DatasetError", "ModelLoadError", "CheckpointError",
           "TrainingError", "LAYOUTS", "PREFERENCE", "PROMPT", "UNPAIRED"]
"""Imported eagerly: the light part of the API, which plugins need just to be listed (settings, errors)."""
