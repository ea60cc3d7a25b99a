"""The run directory contract: nothing half-written, nothing overwritten by accident.

A run writes into a staging directory beside its destination and renames it into place only when it finished,
so a crashed or killed run never leaves a partial directory where a finished one is expected, and never destroys
the previous run that `--overwrite` would replace.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import yaml


class OutputDirError(Exception):
    pass


def default_output_dir(algorithm: str) -> Path:
    return Path("runs") / f"{algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_destination(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"--output-dir {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputDirError(f"--output-dir {path}: not empty; pass --overwrite to replace it, or choose another")


def staging_dir(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.partial-", dir=path.parent))


def publish(staging: Path, path: Path, overwrite: bool) -> None:
    """Moves a finished staging directory to `path`; the old run is removed only after the new one is complete."""
    check_destination(path, overwrite)
    if path.exists():
        trash = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, trash)
        os.replace(staging, path)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, path)


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n")


def write_yaml(path: Path, data) -> None:
    write_atomic(path, yaml.safe_dump(data, sort_keys=False))


class MetricsLog:
    """Per-step metrics as JSON lines, flushed every line so a crash keeps what was logged."""

    def __init__(self, path: Path):
        self._file = open(path, "a")

    def __call__(self, step: int, metrics: dict) -> None:
        row = {"step": step, **{k: (float(v) if hasattr(v, "__float__") else v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class NullLog:
    """The metrics sink of processes other than the main one: they compute metrics but never write them."""

    def __call__(self, step: int, metrics: dict) -> None:
        pass

    def close(self) -> None:
        pass
