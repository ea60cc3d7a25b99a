"""Training rows in batches: the rows at given indices, and an endless shuffled order of them."""

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


def pair_batches(rows, batch_size: int, seed: int) -> Iterator[list[dict]]:
    """Rows (a list of dicts, or a `datasets.Dataset`, read a batch at a time) in shuffled order, `batch_size` at a
    time, reshuffled each epoch, without end. Each process of a data-parallel run draws its own order
    (seed + rank), so their batches differ."""
    gen = random.Random(seed + distributed.rank())
    order = array("q")  # 8 bytes an index, where a list of ints holds an object per index
    while True:
        if len(order) < batch_size:
            fresh = array("q", range(len(rows)))
            gen.shuffle(fresh)  # the same swaps, so the same order, as on a list
            order += fresh
        yield take(rows, order[:batch_size])
        del order[:batch_size]
