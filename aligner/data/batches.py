"""Training rows in batches: the rows at given indices, and an endless shuffled order of them that a checkpoint can
record and a resumed run replay."""

from __future__ import annotations

import random
from array import array
from typing import Iterator

from aligner.parallel import distributed


def take(rows, indices) -> list[dict]:
    """The rows at `indices` as dicts, from a list or a `datasets.Dataset` (read only at those rows)."""
    if isinstance(rows, list):
        return [rows[i] for i in indices]
    columns = rows[list(indices)]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


class ShuffledOrder:
    """Row indices `batch_size` at a time, in shuffled order, reshuffled each epoch, without end. Each process of a
    data-parallel run draws its own order (seed + rank), so their batches differ.

    Its state is the number of batches drawn: `skip(n)` replays the shuffles without reading any row, so a resumed
    run sees the batches the uninterrupted one would have seen, and a checkpoint stores one number however large
    the data."""

    def __init__(self, count: int, batch_size: int, seed: int):
        self.count, self.batch_size = count, batch_size
        self.drawn = 0
        self._random = random.Random(seed + distributed.rank())
        self._order = array("q")  # 8 bytes an index, where a list of ints holds an object per index

    def __iter__(self) -> Iterator[list[int]]:
        return self

    def __next__(self) -> list[int]:
        if len(self._order) < self.batch_size:
            fresh = array("q", range(self.count))
            self._random.shuffle(fresh)  # the same swaps, so the same order, as on a list
            self._order += fresh
        batch = self._order[:self.batch_size].tolist()
        del self._order[:self.batch_size]
        self.drawn += 1
        return batch

    def skip(self, batches: int) -> None:
        """Draws `batches` batches and drops them."""
        for _ in range(batches):
            next(self)


def pair_batches(rows, batch_size: int, seed: int) -> Iterator[list[dict]]:
    """The rows (a list of dicts, or a `datasets.Dataset`, read a batch at a time) of each `ShuffledOrder` batch."""
    for indices in ShuffledOrder(len(rows), batch_size, seed):
        yield take(rows, indices)
