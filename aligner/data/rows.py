"""Row checks, a batch of Arrow rows at a time: malformed messages and labels are refused (the file is broken),
while rows that merely cannot train (an empty answer, a null field, chosen identical to rejected) are dropped and
counted, unless they are most of the file. Rows are named by their 1-based position in the file or split."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aligner.data.layouts import PREFERENCE, PROBLEM, UNPAIRED, Layout, column_kind
from aligner.errors import DatasetError

BATCH = 65536


@dataclass
class RowCheck:
    """What the check kept and why it dropped the rest."""

    total: int
    kept: np.ndarray                       # indices of the rows that can train
    keys: np.ndarray | None = None         # every row's prompt key (heldout.prompt_hashes), computed in the same pass
    reasons: Counter = field(default_factory=Counter)
    first: dict = field(default_factory=dict)  # reason -> first row number (1-based)

    @property
    def dropped(self) -> int:
        return sum(self.reasons.values())

    def describe(self) -> str:
        return ", ".join(f"{count:,} {reason} (first: row {self.first[reason]})"
                         for reason, count in self.reasons.most_common())


def answer_fields(layout: Layout) -> tuple[str, ...]:
    if layout.kind == PREFERENCE:
        return ("chosen", "rejected", "prompt")
    if layout.kind == UNPAIRED:
        return ("completion", "prompt")
    return ("prompt",)


def _messages_problem(column: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first row holding a message without a string role and content, or None."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    messages = pc.list_flatten(array)
    kinds = messages.type
    names = {kinds.field(i).name for i in range(kinds.num_fields)}
    bad = None
    for name in ("role", "content"):
        if name not in names:
            bad = np.ones(len(messages), dtype=bool)
            break
        values = pc.struct_field(messages, name)
        if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
            bad = np.ones(len(messages), dtype=bool)
            break
        nulls = pc.is_null(values).to_numpy(zero_copy_only=False)
        bad = nulls if bad is None else bad | nulls
    if bad is None or not bad.any():
        return None
    parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
    return int(parents[np.argmax(bad)])


def check_messages(dataset, where: str, names: tuple[str, ...]) -> None:
    """Every message of every message-list column has a string role and content; refused naming the row."""
    for name in names:
        if name not in dataset.column_names or column_kind(dataset, name) != "messages":
            continue
        table = dataset.with_format("arrow")
        for start in range(0, len(dataset), BATCH):
            column = table[start:start + BATCH].column(name)
            row = _messages_problem(column)
            if row is not None:
                value = column[row].as_py()
                shown = next((m for m in value if not (isinstance(m.get("role"), str)
                                                       and isinstance(m.get("content"), str))), value)
                shown = {k: v for k, v in shown.items() if v is not None} if isinstance(shown, dict) else shown
                raise DatasetError(f"{where}: row {start + row + 1}: field {name!r}: messages must be {{'role': str, "
                                   f"'content': str}}, got {shown!r}"[:400])


def labels_as_bool(dataset, where: str):
    """`label` as booleans: true/false, or 0/1; anything else is refused naming the row."""
    kind = column_kind(dataset, "label")
    if kind == "bool":
        return dataset
    column = dataset.data.column("label")
    if kind == "int":
        values = column.to_numpy(zero_copy_only=False) if column.null_count == 0 else None
        if values is not None and np.isin(values, (0, 1)).all():
            import datasets

            return dataset.cast_column("label", datasets.Value("bool"))
    for row in range(len(column)):
        value = column[row].as_py()
        if value not in (0, 1) or isinstance(value, float) or value is None:
            raise DatasetError(f"{where}: row {row + 1}: field 'label': expected a boolean (true/false, or 1/0), "
                               f"got {value!r}")
    raise DatasetError(f"{where}: field 'label': expected booleans (true/false, or 1/0)")


def _empty(column) -> np.ndarray:
    """Null, an empty or all-space string, or an empty message list."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0)
    else:
        empty = pc.equal(pc.list_value_length(column), 0)
    return pc.fill_null(empty, True).to_numpy(zero_copy_only=False)


def _identical(chosen, rejected) -> np.ndarray:
    if pa.types.is_string(chosen.type) or pa.types.is_large_string(chosen.type):
        return pc.fill_null(pc.equal(chosen, rejected), False).to_numpy(zero_copy_only=False)
    return np.array([a == b for a, b in zip(chosen.to_pylist(), rejected.to_pylist())], dtype=bool)


def batches(dataset, size: int | None = None) -> Iterator[tuple[int, pa.Table]]:
    """(first row, table) of `dataset`, `size` rows at a time. A dataset that is exactly its Arrow cache files (no
    rows selected, columns as written) is read from them as a stream rather than through the memory map, so a pass
    over every row leaves none of the file resident in the process."""
    size = size or BATCH
    files = [f["filename"] for f in dataset.cache_files]
    readers = []
    if files and getattr(dataset, "_indices", None) is None and dataset.data.num_rows == len(dataset):
        readers = [pa.ipc.open_stream(pa.OSFile(f)) for f in files]
        if any(r.schema.names != dataset.column_names for r in readers):
            readers = []
    if not readers:
        table = dataset.with_format("arrow")
        for start in range(0, len(dataset), size):
            yield start, table[start:start + size]
        return
    start, pending, count = 0, [], 0
    for reader in readers:
        for batch in reader:
            pending.append(batch)
            count += batch.num_rows
            if count >= size:
                yield start, pa.Table.from_batches(pending)
                start, pending, count = start + count, [], 0
    if pending:
        yield start, pa.Table.from_batches(pending)


def usable_rows(dataset, layout: Layout) -> RowCheck:
    """Which rows can train, the reason for each one that cannot, and every row's prompt key, in one pass."""
    from aligner.data.heldout import prompt_hashes

    names = answer_fields(layout)
    check = RowCheck(total=len(dataset), kept=np.empty(0, dtype=np.int64), keys=np.empty(len(dataset), np.uint64))
    kept = []
    for start, batch in batches(dataset):
        check.keys[start:start + batch.num_rows] = prompt_hashes(batch.column("prompt"))
        reason = np.full(batch.num_rows, None, dtype=object)
        if PROBLEM in batch.column_names:
            reason = np.array(batch.column(PROBLEM).to_pylist(), dtype=object)
        for name in reversed(names):  # the first field named wins
            empty = _empty(batch.column(name))
            reason[empty] = f"rows with field {name!r} empty"
        if layout.kind == PREFERENCE:
            same = _identical(batch.column("chosen"), batch.column("rejected")) & (reason == None)  # noqa: E711
            reason[same] = "rows with field 'chosen' identical to 'rejected'"
        bad = np.flatnonzero(reason != None)  # noqa: E711
        for i in bad:
            text = reason[i] if str(reason[i]).startswith("rows ") else f"rows where {reason[i]}"
            check.reasons[text] += 1
            check.first.setdefault(text, start + int(i) + 1)
        kept.append(start + np.flatnonzero(reason == None))  # noqa: E711
    check.kept = np.concatenate(kept) if kept else check.kept
    return check


def refuse_if_mostly_unusable(check: RowCheck, where: str) -> None:
    """A file where more than half the rows cannot train is refused: it is the wrong file or the wrong mapping."""
    if check.dropped * 2 > check.total:
        raise DatasetError(f"{where}: {check.dropped:,} of {check.total:,} rows cannot train: {check.describe()}")
