"""The run directory contract: nothing half-written, nothing overwritten by accident.

A run writes into a staging directory beside its destination and renames it into place only when it finished,
so a crashed or killed run never leaves a partial directory where a finished one is expected, and never destroys
the previous run that `--overwrite` would replace.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from aligner.errors import OutputDirError

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
"""Names that become one path component (run ids, algorithm names): no separator, no leading dot, no `..`."""


def is_safe_name(name: str) -> bool:
    return isinstance(name, str) and bool(SAFE_NAME.fullmatch(name)) and ".." not in name


def default_output_dir(algorithm: str) -> Path:
    return Path("runs") / f"{algorithm}-{time.strftime('%Y%m%d-%H%M%S')}"


def check_destination(path: Path, overwrite: bool) -> None:
    if path.exists() and not path.is_dir():
        raise OutputDirError(f"--output-dir {path}: exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise OutputDirError(f"--output-dir {path}: not empty; pass --overwrite to replace it, or choose another")


CHECKPOINTS = "checkpoints"
"""Where in its run directory an algorithm writes checkpoints (`checkpoints/step-N/`); a partial run that has one
is kept after a failure, because it can be resumed."""
PARTIAL = re.compile(r"\.(?P<name>.+)\.(?:partial-[^./]+|old-\d+)")
"""Hidden siblings of a run directory: a staging directory, or an old run being replaced by `--overwrite`."""


class Claim:
    """Exclusive use of one output directory by one run, held as an flock on a hidden `.NAME.lock` beside it.
    The kernel drops the lock when the process dies, so a killed run never blocks the next one."""

    def __init__(self, fd: int, path: Path):
        self._fd, self.path = fd, path

    def release(self) -> None:
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


def claim(path: Path) -> Claim:
    """Checks that the output directory's parent can be written (by creating the lock file in it) and that no
    other run is writing to the same directory; both before any data or weights load."""
    blocking = next((p for p in [path.parent, *path.parent.parents] if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise OutputDirError(f"--output-dir {path}: {blocking} is a file, not a directory")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as error:
        raise OutputDirError(f"--output-dir {path}: cannot write in {path.parent} "
                             f"({error.strerror or type(error).__name__})") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise OutputDirError(f"--output-dir {path}: another aligner run (pid {holder}) is writing to it; wait "
                                 f"for it to finish or choose another directory") from None
        raise
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return Claim(fd, lock_path(path))


def in_use(path: Path) -> bool:
    """Whether a live run holds the claim on output directory `path`."""
    try:
        fd = os.open(lock_path(path), os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def checkpoints(run_dir: Path) -> list[Path]:
    return sorted(p for p in (run_dir / CHECKPOINTS).glob("step-*") if p.is_dir())


def discard_unless_resumable(staging: Path) -> bool:
    """After a failure: a partial run with a checkpoint is kept (it can be resumed); any other is removed, so
    failed runs leave no litter. Returns whether it was kept."""
    if not staging.is_dir():
        return False
    if checkpoints(staging):
        return True
    shutil.rmtree(staging, ignore_errors=True)
    return False


@dataclass
class Partial:
    path: Path
    destination: Path       # the run directory it was (or is being) written for
    in_use: bool
    checkpoints: list[Path]


def find_partials(root: Path) -> list[Partial]:
    """Every staging or replaced-run directory under `root` (finished runs are not searched into)."""
    found = []
    for current, dirs, files in os.walk(root):
        here = Path(current)
        if "summary.json" in files and here != Path(root):
            dirs.clear()
            continue
        for name in sorted(dirs):
            match = PARTIAL.fullmatch(name)
            if match:
                destination = here / match["name"]
                found.append(Partial(here / name, destination, in_use(destination), checkpoints(here / name)))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
    return found


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
    try:
        tmp.write_text(text)
    except BaseException:  # a full disk: the file it replaces stays as it was, and no temp file is left
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_folder(path: Path, fill) -> Path:
    """`fill(folder)` writes into a hidden folder beside `path`, which replaces `path` once complete: a failed or
    abandoned write (a full disk, a stop) leaves neither a partial folder nor a temp one, and `path` as it was."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        fill(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


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
