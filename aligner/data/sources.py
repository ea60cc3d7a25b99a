"""Where rows come from: a local file, a local folder (a clone of a hub dataset repository, or what
`Dataset.save_to_disk` wrote), or a hub id, with a config and a split chosen the same way for each.

Everything loads into Arrow through `datasets` (memory-mapped from its cache, never listed into Python objects), so
a file of millions of rows costs what its Arrow table costs. When a JSON or CSV file cannot be read, it is read
again line by line only to name the row and what is wrong with it.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from aligner.errors import DatasetError

LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}
DEFAULT_SPLIT = "train"
WRITER_BATCH = 100_000
"""Rows per record batch of the Arrow cache `datasets` writes. Opening a cache reads every batch's header through
the memory map, which maps the pages around it: with `datasets`' default of 1,000 rows that is about the whole file
(resident in the process), with this many rows a small part of it (docs/data.md has the figures)."""


@dataclass(frozen=True)
class Source:
    """One dataset as the user named it, with the config and split to read."""

    spec: str
    config: str | None = None
    split: str | None = None
    flag: str = "--dataset"


@dataclass
class Loaded:
    dataset: object          # datasets.Dataset
    where: str               # the path or id, plus config and split where they were chosen


def check_arrow_cache() -> None:
    """`datasets.load_dataset` converts what it reads into Arrow files in its cache (HF_DATASETS_CACHE): a cache
    that cannot be written is refused before reading, naming it."""
    import datasets

    from aligner.harness import storage

    storage.check_writable(Path(datasets.config.HF_DATASETS_CACHE), "HF_DATASETS_CACHE")


def arrow_cache_fault(error: Exception) -> None:
    """A storage fault met while datasets wrote its Arrow cache (a full disk) is reported as one, not as data that
    could not be read."""
    import datasets

    from aligner.harness import storage

    found = storage.fault(error)
    if found is not None:
        raise storage.StorageError(f"datasets' Arrow cache (HF_DATASETS_CACHE {datasets.config.HF_DATASETS_CACHE}): "
                                   f"{storage.describe(found)}") from None


def _check_utf8(path: Path, spec: str) -> None:
    """A streaming UTF-8 check that names the line of the first bad byte (the CSV reader would not)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 0
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                bad = offset + error.start
                line = lines + chunk.count(b"\n", 0, error.start) + 1
                raise DatasetError(f"{spec}: not UTF-8 text: byte {bad} (line {line}) cannot be decoded; save the "
                                   f"file as UTF-8") from None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def _parse_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise DatasetError(f"{where}: JSON nested too deeply") from None


def _diagnose_json(path: Path, spec: str) -> None:
    """Reads a JSON/JSONL file as Python objects to say which row is wrong; called only after Arrow refused it."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = [(number, _parse_json(line, f"{spec}: row {number}"))
                for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    else:
        data = _parse_json(text, spec)
        if not isinstance(data, list):
            raise DatasetError(f"{spec}: expected a JSON list of rows, got {type(data).__name__}")
        rows = list(enumerate(data, start=1))
    kinds: dict[str, tuple[int, str]] = {}
    for number, row in rows:
        if not isinstance(row, dict):
            raise DatasetError(f"{spec}: row {number}: expected an object of named fields, got {type(row).__name__}")
        for name, value in row.items():
            kind = _json_kind(value)
            first = kinds.setdefault(name, (number, kind))
            if value is not None and first[1] != kind and first[1] != "null":
                raise DatasetError(f"{spec}: row {number}: field {name!r} is {kind} but row {first[0]} has "
                                   f"{first[1]}; one file must use one format per field (strings, or lists of "
                                   f"messages)")
            if first[1] == "null":
                kinds[name] = (number, kind)


def _json_kind(value) -> str:
    if isinstance(value, list):
        return "a message list" if all(isinstance(m, dict) for m in value) else "a list"
    if value is None:
        return "null"
    return {str: "a string", bool: "a boolean", int: "a number", float: "a number", dict: "an object"}.get(
        type(value), type(value).__name__)


def _load_file(path: Path, spec: str):
    import datasets

    if path.suffix not in LOCAL_FORMATS:
        raise DatasetError(f"{spec}: unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_FORMATS)}, "
                           f"or a dataset folder")
    if path.suffix in (".jsonl", ".json", ".csv"):
        _check_utf8(path, spec)
    if path.stat().st_size == 0:
        raise DatasetError(f"{spec}: no rows")
    if path.suffix == ".json" and _first_byte(path) == b"{":
        try:
            whole = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            whole = None  # JSON Lines under a .json name, which the reader takes
        if isinstance(whole, dict):
            raise DatasetError(f"{spec}: expected a JSON list of rows, got dict")
    check_arrow_cache()
    try:
        with _quiet_reader():
            return datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train",
                                         writer_batch_size=WRITER_BATCH)
    except Exception as error:
        arrow_cache_fault(error)
        if path.suffix in (".jsonl", ".json"):
            _diagnose_json(path, spec)
        raise DatasetError(f"{spec}: could not read ({type(error).__name__}: {_first_line(error)})") from error


@contextlib.contextmanager
def _quiet_reader():
    """The readers log a file they cannot parse before raising; the error aligner raises says it once."""
    logger = logging.getLogger("datasets")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _first_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        while (byte := handle.read(1)) and byte.isspace():
            pass
    return byte


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:300]


def _pick_split(splits: list[str], wanted: str | None, where: str, flag: str) -> str:
    """`wanted`, or `train`, or the one split whose name starts with `train`; otherwise refuse, listing them."""
    listed = ", ".join(splits)
    if wanted is not None:
        if wanted not in splits:
            raise DatasetError(f"{where}: no split {wanted!r}; its splits are: {listed}")
        return wanted
    if DEFAULT_SPLIT in splits:
        return DEFAULT_SPLIT
    trains = [s for s in splits if s.startswith(DEFAULT_SPLIT)]
    if len(splits) == 1:
        return splits[0]
    if len(trains) == 1:
        return trains[0]
    raise DatasetError(f"{where}: no 'train' split to default to; its splits are: {listed}; choose one with "
                       f"{flag}-split")


def _saved_to_disk(folder: Path) -> bool:
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def _load_saved(folder: Path, source: Source):
    import datasets

    try:
        saved = datasets.load_from_disk(str(folder))
    except Exception as error:
        raise DatasetError(f"{source.spec}: could not read the saved dataset ({type(error).__name__}: "
                           f"{_first_line(error)})") from error
    if isinstance(saved, datasets.DatasetDict):
        split = _pick_split(list(saved), source.split, source.spec, source.flag)
        return Loaded(saved[split], f"{source.spec} (split {split})")
    if source.split is not None:
        raise DatasetError(f"{source.spec}: a single saved Dataset has no splits; drop {source.flag}-split "
                           f"{source.split}")
    return Loaded(saved, source.spec)


def _load_repository(source: Source):
    """A hub id or a folder laid out like a hub dataset repository: configs and splits as `datasets` finds them."""
    import datasets

    try:
        configs = datasets.get_dataset_config_names(source.spec)
    except Exception as error:
        raise DatasetError(f"{source.spec}: not a local file or folder, and loading it as a hub dataset failed "
                           f"({type(error).__name__}: {_first_line(error)})") from error
    if source.config is not None and configs and source.config not in configs:
        raise DatasetError(f"{source.spec}: no config {source.config!r}; its configs are: {', '.join(configs)}")
    config = source.config
    if config is None and len(configs) > 1 and "default" not in configs:
        raise DatasetError(f"{source.spec}: has several configs ({', '.join(configs)}); choose one with "
                           f"{source.flag}-config")
    try:
        splits = datasets.get_dataset_split_names(source.spec, config)
        split = _pick_split(splits, source.split, source.spec + (f" (config {config})" if config else ""),
                            source.flag)
        check_arrow_cache()
        dataset = datasets.load_dataset(source.spec, config, split=split, writer_batch_size=WRITER_BATCH)
    except DatasetError:
        raise
    except Exception as error:
        arrow_cache_fault(error)
        raise DatasetError(f"{source.spec}: could not load ({type(error).__name__}: {_first_line(error)})") from error
    shown = ", ".join(x for x in (f"config {config}" if config else "", f"split {split}") if x)
    return Loaded(dataset, f"{source.spec} ({shown})")


def load(source: Source) -> Loaded:
    """The rows of `source` as an Arrow-backed `datasets.Dataset`, or a one-line DatasetError naming the problem."""
    path = Path(source.spec).expanduser()
    looks_local = source.spec.startswith((".", "/", "~")) or path.suffix in LOCAL_FORMATS or path.exists()
    if looks_local and not path.exists():
        raise DatasetError(f"{source.spec}: no such file or folder")
    if path.is_file():
        if source.config is not None or source.split is not None:
            what = f"{source.flag}-config" if source.config is not None else f"{source.flag}-split"
            raise DatasetError(f"{source.spec}: a single file has no configs or splits; drop {what}")
        return Loaded(_load_file(path, source.spec), source.spec)
    if path.is_dir():
        if _saved_to_disk(path):
            return _load_saved(path, source)
        if not any(p.suffix in LOCAL_FORMATS for p in path.rglob("*") if p.is_file()):
            raise DatasetError(f"{source.spec}: a folder with no data files ({', '.join(LOCAL_FORMATS)}) and no "
                               f"save_to_disk dataset")
    return _load_repository(source)
