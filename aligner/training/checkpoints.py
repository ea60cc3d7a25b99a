"""Training state (optimizer, RNGs, counters) written as safetensors plus JSON, never as a pickle.

`torch.load` of a pickle runs whatever code the file names, so a checkpoint handed over by someone else could
run code on `--resume`. Here tensors go to `<name>.safetensors` and everything else to `<name>.json`; loading
reads data only. The structures are the ones training state is made of: dicts (any hashable JSON-scalar keys,
e.g. the optimizer's integer parameter ids), lists, tuples (Python's RNG state), numbers, strings, None, torch
tensors and numpy arrays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from aligner.errors import CheckpointError


class StateFileError(CheckpointError):
    """A state file that is missing, malformed or refers to a tensor it does not hold; the message names it."""


_SCALARS = (str, int, float, bool, type(None))


def _encode(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().cpu().contiguous().clone()  # clone: safetensors refuses shared storage
        return {"__tensor__": key}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors) for v in value]}
    if isinstance(value, list):
        return [_encode(v, tensors) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in value):
            return {k: _encode(v, tensors) for k, v in value.items()}
        if not all(isinstance(k, _SCALARS) for k in value):
            raise TypeError(f"cannot store a dict key of type {type(next(iter(value))).__name__}")
        return {"__items__": [[k, _encode(v, tensors)] for k, v in value.items()]}
    if isinstance(value, _SCALARS):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a state file")


def _decode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors, where) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        key = value["__tensor__"]
        if key not in tensors:
            raise StateFileError(f"{where}: refers to tensor {key!r}, which its .safetensors file does not hold")
        return tensors[key]
    if "__ndarray__" in value:
        try:
            return np.asarray(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        except (TypeError, ValueError) as error:
            raise StateFileError(f"{where}: malformed array ({error})") from None
    if "__tuple__" in value:
        return tuple(_decode(v, tensors, where) for v in value["__tuple__"])
    if "__items__" in value:
        items = value["__items__"]
        if not all(isinstance(i, list) and len(i) == 2 and isinstance(i[0], _SCALARS) for i in items):
            raise StateFileError(f"{where}: malformed mapping")
        return {k: _decode(v, tensors, where) for k, v in items}
    return {k: _decode(v, tensors, where) for k, v in value.items()}


def save_state(directory: Path, name: str, state: Any) -> None:
    """Writes `<name>.safetensors` and `<name>.json` in `directory` (each atomically)."""
    tensors: dict[str, torch.Tensor] = {}
    document = _encode(state, tensors)
    directory = Path(directory)
    tmp = directory / f".{name}.safetensors.tmp"
    save_file(tensors, str(tmp))
    os.replace(tmp, directory / f"{name}.safetensors")
    tmp = directory / f".{name}.json.tmp"
    tmp.write_text(json.dumps(document) + "\n")
    os.replace(tmp, directory / f"{name}.json")


def state_exists(directory: Path, name: str) -> bool:
    """Whether `directory` holds both files of a state saved under `name`."""
    return (Path(directory) / f"{name}.json").is_file() and (Path(directory) / f"{name}.safetensors").is_file()


def load_state(directory: Path, name: str) -> Any:
    """Reads what `save` wrote: data only, nothing in the files is executed."""
    directory = Path(directory)
    document_path, tensors_path = directory / f"{name}.json", directory / f"{name}.safetensors"
    for path in (document_path, tensors_path):
        if not path.is_file():
            raise StateFileError(f"{path}: missing")
    try:
        tensors = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise StateFileError(f"{tensors_path}: not a readable safetensors file ({error})") from None
    try:
        document = json.loads(document_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
        raise StateFileError(f"{document_path}: not valid JSON ({type(error).__name__})") from None
    return _decode(document, tensors, str(document_path))


def find_checkpoint(path: str | Path, name: str = "state") -> Path:
    """For `--resume`: `path` itself when it holds the state `name`, else the latest complete `checkpoints/step-*`
    under it (a run directory, finished or partial). A pickled `state.pt` is refused unopened."""
    from aligner.harness.rundir import CHECKPOINTS

    path = Path(path)
    if state_exists(path, name):
        return path
    if (path / "state.pt").is_file():
        raise CheckpointError(f"--resume {path}: holds state.pt, a pickle, which aligner does not load (unpickling "
                              f"can run any code the file names); checkpoints are safetensors + JSON (state.json)")
    candidates = [c for c in sorted((path / CHECKPOINTS).glob("step-*")) if state_exists(c, name)] if path.is_dir() else []
    if not candidates:
        raise CheckpointError(f"--resume {path}: no checkpoint there (expected state.json and state.safetensors, or "
                              f"checkpoints/step-*/)")
    return candidates[-1]
