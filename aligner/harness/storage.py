"""Storage faults (a full disk, a read-only mount, a permission, a failing device) turned into one line that names
the path, and the checks before training that refuse a location the run could not write.

A fault met while running is a `StorageError` (exit code 1); the runner adds what survived. A location that is
not writable, or too small for what the run will certainly write, is refused before training (`StorageCheckError`,
exit code 2).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from pathlib import Path

from aligner.errors import InputError, RunError

FAULTS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}
"""The errors of a storage location rather than of aligner's input: what `fault` recognises."""
_RUST_OS_ERROR = re.compile(r"os error (\d+)")


class StorageError(RunError):
    """A write failed on the storage (exit code 1); the message names the path, the error and what was kept."""


class StorageCheckError(InputError):
    """A location the run must write is not writable or has too little room (exit code 2, before training)."""


def fault(error: BaseException | None) -> OSError | None:
    """The storage fault behind `error` (itself, or what it was raised from): an OSError with one of FAULTS, or the
    error safetensors raises for one ("I/O error: No space left on device (os error 28)")."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in FAULTS:
            return error
        if type(error).__name__ == "SafetensorError":
            match = _RUST_OS_ERROR.search(str(error))
            if match and int(match[1]) in FAULTS:
                return OSError(int(match[1]), os.strerror(int(match[1])))
        error = error.__cause__ or error.__context__
    return None


def describe(error: OSError) -> str:
    """`PATH: No space left on device (ENOSPC)`."""
    name = errno.errorcode.get(error.errno, str(error.errno))
    where = f"{error.filename}: " if error.filename else ""
    return f"{where}{error.strerror or os.strerror(error.errno)} ({name})"


@contextlib.contextmanager
def writing(path: Path | str):
    """Names `path` in a storage fault raised inside (safetensors' errors name no file)."""
    try:
        yield
    except Exception as error:
        found = fault(error)
        if found is None or (isinstance(error, OSError) and error.filename):
            raise
        raise OSError(found.errno, found.strerror, str(path)) from error


def megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def free_bytes(path: Path) -> int:
    """Free space on the filesystem holding `path` (or its nearest existing parent)."""
    path = Path(path)
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def size_of(path: Path) -> int:
    """Bytes under `path` (a file or a folder)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def check_writable(directory: Path, what: str) -> None:
    """Creates (and removes) a file in `directory`, creating the directory first; refuses with exit code 2 naming
    `what` (the flag or environment variable that chose the location) when that fails."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".aligner-write-check-"):
            pass
    except OSError as error:
        raise StorageCheckError(f"{what} {directory}: not writable ({error.strerror or type(error).__name__}); "
                                f"choose a writable location") from None


def check_room(directory: Path, needed: int, what: str, holds: str) -> None:
    """Refuses (exit code 2) when the filesystem of `directory` has less free space than `needed` bytes, which the
    run will certainly write there (`holds` says what)."""
    free = free_bytes(directory)
    if free < needed:
        raise StorageCheckError(f"{what} {directory}: {megabytes(free)} free, but the run will write at least "
                                f"{megabytes(needed)} there ({holds}); free space or choose another location")


def lora_bytes(model, lora) -> int:
    """Bytes of one LoRA adapter of shape `lora` (a peft LoraConfig) on `model`, in float32 as peft keeps adapter
    weights: rank x (inputs + outputs) for every targeted linear layer."""
    import torch
    from peft.tuners.tuners_utils import check_target_module_exists

    total = 0
    for name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if lora.target_modules == "all-linear" or lora.target_modules == {"all-linear"}:
            matched = not name.endswith("lm_head")
        else:
            matched = bool(check_target_module_exists(lora, name))
        if matched:
            total += lora.r * (module.in_features + module.out_features)
    return 4 * total
