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
    from aligner.harness.storage import writing

    tensors: dict[str, torch.Tensor] = {}
    document = _encode(state, tensors)
    directory = Path(directory)
    for suffix, write in (("safetensors", lambda path: save_file(tensors, str(path))),
                          ("json", lambda path: path.write_text(json.dumps(document) + "\n"))):
        tmp = directory / f".{name}.{suffix}.tmp"
        try:
            with writing(tmp):
                write(tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        os.replace(tmp, directory / f"{name}.{suffix}")


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


def random_streams() -> dict:
    """Every global random stream a training loop draws from (torch's CPU and CUDA generators, Python's, numpy's),
    as state-file values: the one definition every loop's checkpoint stores, so a resumed run draws what the
    uninterrupted one drew on any device."""
    import random

    return {"torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "python_rng": random.getstate(), "numpy_rng": np.random.get_state()}


def restore_random_streams(state: dict) -> None:
    """Sets the streams `random_streams` captured (a checkpoint written without CUDA leaves CUDA's as it is)."""
    import random

    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    random.setstate(state["python_rng"])
    np.random.set_state(state["numpy_rng"])


def write_checkpoint(directory: Path, step: int, write_files, state: dict, name: str = "state") -> Path:
    """`directory/step-NNNNNN`, written whole or not at all (`rundir.write_folder`): `write_files(folder)` (adapters,
    heads) and the state, so the latest complete checkpoint is always a good one. A resumed run re-writing the step
    it continued from replaces it."""
    from aligner.harness.rundir import write_folder

    def fill(folder: Path) -> None:
        write_files(folder)
        save_state(folder, name, state)

    return write_folder(Path(directory) / f"step-{step:06d}", fill)


def checkpoint_step(path: Path) -> int | None:
    """The step of a `step-NNNNNN` checkpoint folder's name."""
    name = Path(path).name
    return int(name[5:]) if name.startswith("step-") and name[5:].isdigit() else None


def prune_checkpoints(directory: Path, limit: int, keep: set[int] | frozenset = frozenset(),
                      name: str = "state") -> list[Path]:
    """--save-limit: once the newest checkpoint in `directory` is complete, removes the oldest complete ones beyond
    the last `limit` (0 keeps every one), except those whose step is in `keep` (the best evaluation's). Returns what
    it removed."""
    import shutil

    if limit <= 0:
        return []
    complete = [c for c in sorted(Path(directory).glob("step-*")) if c.is_dir() and state_exists(c, name)]
    removed = []
    for old in complete[:-limit]:
        if checkpoint_step(old) not in keep:
            shutil.rmtree(old, ignore_errors=True)
            removed.append(old)
    return removed


def read_checkpoint(checkpoint: Path, kind: str, settings: dict, allow_changed: bool, resumable: frozenset,
                    name: str = "state", same: dict | None = None) -> dict:
    """The state of a checkpoint written by a loop of `kind`, refused (naming the checkpoint) when it is another
    loop's, when a field in `same` ({state key: (expected value, flag)}) differs (what no setting can change, such
    as PPO's critic, whose weights would not load), or when it was made with other settings than `settings`, except
    those in `resumable`, unless `allow_changed`: a different seed or learning rate would silently make the resumed
    run another run."""
    try:
        state = load_state(checkpoint, name)
    except CheckpointError as error:
        raise CheckpointError(f"--resume {checkpoint}: {error}") from None
    if not isinstance(state, dict) or not {"step", "settings"} <= set(state):
        article = "an" if kind[0] in "aeiou" else "a"
        raise CheckpointError(f"--resume {checkpoint}: {name}.json is not {article} {kind} checkpoint's state")
    if state.get("kind") != kind:
        raise CheckpointError(f"--resume {checkpoint}: a checkpoint of {state.get('kind') or 'another'} training, "
                              f"not of {kind} training")
    for key, (expected, flag) in (same or {}).items():
        if state.get(key) != expected:
            raise CheckpointError(f"--resume {checkpoint}: saved with {flag} {state.get(key)}, not {expected}")
    from aligner.config import changed_settings

    changes = changed_settings(state["settings"], settings, ignore=resumable)
    if changes and not allow_changed:
        raise CheckpointError(f"--resume {checkpoint}: settings differ from the checkpointed run's "
                              f"({'; '.join(changes)}); pass the same settings, or --allow-changed-settings to "
                              f"continue with the new ones")
    return state


def continue_run(context, checkpoint: Path, step: int, with_step_zero: bool = False) -> None:
    """What every loop does once it has restored `checkpoint` (of iteration `step`): the main process copies the
    checkpoint into this run's `checkpoints/`, so the new run directory is complete on its own, and the resumed
    run's metrics (and evaluation points) up to `step` are logged again first, so metrics.jsonl (evaluations.jsonl)
    reads as one run. Rows of step 0 (a reward
    model trained before the loop) are carried when `with_step_zero`; summary gets `resumed_from_step`."""
    import json
    import shutil

    from aligner.harness.rundir import CHECKPOINTS
    from aligner.parallel import distributed

    context.summary_extras["resumed_from_step"] = step
    if distributed.is_main():
        from aligner.harness.rundir import write_folder

        write_folder(context.output_dir / CHECKPOINTS / checkpoint.name,
                     lambda folder: shutil.copytree(checkpoint, folder, dirs_exist_ok=True))
    points = getattr(context, "evaluation_points", None)
    if points is not None and checkpoint.parent.name == CHECKPOINTS:
        points.carry(checkpoint.parents[1] / "evaluations.jsonl", step)
    previous = checkpoint.parents[1] / "metrics.jsonl"
    if checkpoint.parent.name != CHECKPOINTS or not previous.is_file():
        return
    for line in previous.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut short
        if not isinstance(row, dict) or not isinstance(row.get("step"), int):
            continue
        if 0 < row["step"] <= step or (row["step"] == 0 and with_step_zero):
            context.log_metrics(row.pop("step"), row)
