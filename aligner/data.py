"""Preference data and held-out prompts, checked row by row before any training starts.

Rows follow TRL's preference format (`prompt`, `chosen`, `rejected`), either standard (strings) or
conversational (lists of `{"role", "content"}` messages), so TRL trainers consume them directly.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from datasets import Dataset
from aligner.errors import DatasetError

FIELDS = ("prompt", "chosen", "rejected")
LOCAL_FORMATS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def _read_text(path: Path, spec: str) -> str:
    """The file as UTF-8 text; anything else is refused naming the row (line) where decoding failed."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise DatasetError(f"{spec}: not UTF-8 text: byte {error.start} (line {line}) cannot be decoded; save the "
                           f"file as UTF-8") from None


def _parse_json(text: str, where: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise DatasetError(f"{where}: JSON nested too deeply") from None


def _read_rows(spec: str) -> list[dict]:
    path = Path(spec).expanduser()
    if path.suffix in LOCAL_FORMATS or path.exists():
        if not path.is_file():
            raise DatasetError(f"{spec}: no such file")
        if path.suffix == ".jsonl":
            lines = _read_text(path, spec).splitlines()
            return [_parse_json(line, f"{spec}: row {number}") for number, line in enumerate(lines, start=1)
                    if line.strip()]
        if path.suffix == ".json":
            data = _parse_json(_read_text(path, spec), spec)
            if not isinstance(data, list):
                raise DatasetError(f"{spec}: expected a JSON list of rows, got {type(data).__name__}")
            return data
        if path.suffix in (".parquet", ".csv"):
            import datasets

            if path.suffix == ".csv":
                _read_text(path, spec)  # names the line of a bad byte, which the csv reader would not
            try:
                return datasets.load_dataset(LOCAL_FORMATS[path.suffix], data_files=str(path), split="train").to_list()
            except Exception as error:
                raise DatasetError(f"{spec}: could not read ({type(error).__name__}: {error})") from error
        raise DatasetError(f"{spec}: unsupported file type {path.suffix!r}; use one of {', '.join(LOCAL_FORMATS)}")
    import datasets

    try:
        return datasets.load_dataset(spec, split="train").to_list()
    except Exception as error:
        raise DatasetError(f"{spec}: not a local file, and loading it as a hub dataset failed "
                           f"({type(error).__name__}: {error})") from error


def _check_text(value, spec: str, number: int, name: str) -> None:
    """A field is a non-empty string, or a non-empty list of chat messages with string content."""
    where = f"{spec}: row {number}: field {name!r}"
    if isinstance(value, str):
        if not value.strip():
            raise DatasetError(f"{where}: empty")
        return
    if isinstance(value, list) and value:
        for message in value:
            if not (isinstance(message, dict) and isinstance(message.get("role"), str)
                    and isinstance(message.get("content"), str)):
                raise DatasetError(f"{where}: messages must be {{'role': str, 'content': str}}, got {message!r}")
        return
    raise DatasetError(f"{where}: expected a non-empty string or list of messages, got {type(value).__name__} "
                       f"{value!r}")


def is_conversational(value) -> bool:
    return isinstance(value, list)


def _format_name(conversational: bool) -> str:
    return "conversational (message lists)" if conversational else "standard (strings)"


class _OneFormat:
    """One file, one format: every field of every row is a string (standard) or a message list (conversational),
    as TRL's trainers expect; a mix passes a per-field check and then fails deep inside a trainer."""

    def __init__(self, spec: str):
        self.spec, self.first = spec, None

    def check(self, number: int, row: dict, fields) -> None:
        kinds = {name: is_conversational(row[name]) for name in fields}
        if len(set(kinds.values())) > 1:
            described = ", ".join(f"{name!r} is {'a message list' if c else 'a string'}" for name, c in kinds.items())
            raise DatasetError(f"{self.spec}: row {number}: {described}; a row's fields must all be strings "
                               f"(standard format) or all message lists (conversational format)")
        conversational = next(iter(kinds.values()))
        if self.first is None:
            self.first = conversational
        elif conversational != self.first:
            raise DatasetError(f"{self.spec}: row {number} is {_format_name(conversational)} but row 1 is "
                               f"{_format_name(self.first)}; one file must use one format")


def validate_preferences(rows: list, spec: str) -> None:
    if not rows:
        raise DatasetError(f"{spec}: no rows")
    one_format = _OneFormat(spec)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DatasetError(f"{spec}: row {number}: expected an object with {', '.join(FIELDS)}")
        for name in FIELDS:
            if name not in row:
                raise DatasetError(f"{spec}: row {number}: missing field {name!r}")
            _check_text(row[name], spec, number, name)
        one_format.check(number, row, FIELDS)
        if row["chosen"] == row["rejected"]:
            raise DatasetError(f"{spec}: row {number}: field 'chosen' is identical to 'rejected'")


def load_preferences(spec: str) -> Dataset:
    """A validated preference dataset with exactly the three TRL columns."""
    from aligner.toy import world

    source = str(world.ensure().train_path) if spec == world.TOY_MODEL else spec
    rows = _read_rows(source)
    validate_preferences(rows, source)
    return Dataset.from_list([{name: row[name] for name in FIELDS} for row in rows])


def load_prompts(spec: str) -> list[str]:
    from aligner.toy import world

    source = str(world.ensure().eval_prompts_path) if spec == world.TOY_MODEL else spec
    rows = _read_rows(source)
    if not rows:
        raise DatasetError(f"{source}: no rows")
    prompts = []
    one_format = _OneFormat(source)
    for number, row in enumerate(rows, start=1):
        if not isinstance(row, dict) or "prompt" not in row:
            raise DatasetError(f"{source}: row {number}: missing field 'prompt'")
        _check_text(row["prompt"], source, number, "prompt")
        one_format.check(number, row, ("prompt",))
        prompts.append(row["prompt"])
    return prompts


def _prompt_key(prompt) -> str:
    return hashlib.sha256(json.dumps(prompt, sort_keys=True).encode()).hexdigest()


def split_held_out(train: Dataset, n_prompts: int) -> tuple[Dataset, list]:
    """Holds out `n_prompts` distinct prompts (chosen by hash, so the split is stable) and drops every training
    row that uses one of them, so evaluation never sees a training prompt."""
    unique = sorted({_prompt_key(p): p for p in train["prompt"]}.items())
    if len(unique) < 2 * n_prompts:
        raise DatasetError(f"dataset has {len(unique)} distinct prompts: too few to hold out {n_prompts} for "
                           f"evaluation; pass --eval-dataset or lower --eval-prompts")
    held = dict(unique[:n_prompts])
    kept = train.filter(lambda row: _prompt_key(row["prompt"]) not in held)
    return kept, list(held.values())


def check_chat_template(tokenizer, model: str, sources: list[tuple[str, list]]) -> None:
    """Conversational rows need the model's chat template; refused before any weights load, naming the file."""
    if getattr(tokenizer, "chat_template", None):
        return
    for source, values in sources:
        if values and is_conversational(values[0]):
            raise DatasetError(f"{source}: rows are conversational (message lists), but the tokenizer of --model "
                               f"{model} has no chat template; give plain strings, or a model that has one")


def load_for_run(dataset: str, eval_dataset: str | None, n_eval: int) -> tuple[Dataset, list]:
    """Training pairs and held-out evaluation prompts, the same way for every algorithm."""
    from aligner.toy import world

    train = load_preferences(dataset)
    if eval_dataset is not None:
        prompts = load_prompts(eval_dataset)
    elif dataset == world.TOY_MODEL:
        prompts = load_prompts(world.TOY_MODEL)
    else:
        train, prompts = split_held_out(train, n_eval)
    return train, prompts[:n_eval]
