"""Choosing rows: a seeded draw of `--max-samples`, the distinct prompts in order of first appearance, and the
held-out evaluation prompts split off the training rows. Prompts are compared by a 64-bit key computed a chunk of
rows at a time (strings as they are, message lists as JSON), so no step holds every prompt as a Python object."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa

from aligner.errors import DatasetError


def prompt_hashes(column: pa.ChunkedArray, chunk: int = 65536) -> np.ndarray:
    """A stable 64-bit key of each prompt (BLAKE2b of its text, or of its messages as JSON): the same on every
    machine and in every process, whatever the row order. Computed a chunk of rows at a time, so only the 8-byte keys
    of every row are held; two distinct prompts share a key with a chance near n^2 / 2^65."""
    keys = np.empty(len(column), dtype=np.uint64)
    for start in range(0, len(column), chunk):
        for offset, prompt in enumerate(column.slice(start, chunk).to_pylist()):
            text = prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)
            keys[start + offset] = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    return keys


def column(dataset, name: str) -> pa.ChunkedArray:
    """One column of `dataset` in its row order, as Arrow. Rows selected by index (a held-out split, a draw) are
    gathered with Arrow's `take` on the index column `datasets` keeps; its own row access gathers them a slice at a
    time, far slower and with copies of every column."""
    indices = getattr(dataset, "_indices", None)
    if indices is None:
        return dataset.data.column(name)
    return dataset.data.column(name).take(indices.column(0))


def _prompt_column(dataset) -> pa.ChunkedArray:
    return column(dataset, "prompt")


def _is_text(column) -> bool:
    return pa.types.is_string(column.type) or pa.types.is_large_string(column.type)


def draw(dataset, n: int | None, seed: int, keys: np.ndarray | None = None):
    """(rows, their keys): `n` rows drawn at random with `seed`, kept in their file order; all rows when `n` is None
    or larger. `keys`: the rows' prompt keys, when already computed."""
    if n is None or n >= len(dataset):
        return dataset, keys
    chosen = np.sort(np.random.default_rng(seed).permutation(len(dataset))[:n])
    return dataset.select(chosen), (None if keys is None else keys[chosen])


def first_rows(dataset, keys: np.ndarray | None = None) -> np.ndarray:
    """Index of the first row of each distinct prompt, in order of first appearance."""
    _, first = np.unique(prompt_hashes(_prompt_column(dataset)) if keys is None else keys, return_index=True)
    return np.sort(first)


def distinct_prompts(dataset, keys: np.ndarray | None = None):
    """The rows of `dataset` with one row per distinct prompt (its first), every column kept."""
    first = first_rows(dataset, keys)
    return dataset if len(first) == len(dataset) else dataset.select(first)


def split_held_out(dataset, n_prompts: int, where: str = "dataset", keys: np.ndarray | None = None):
    """(training rows, held-out rows): the `n_prompts` distinct prompts with the smallest keys (stable whatever the
    row order), one row each, and every training row with one of those prompts dropped, so evaluation never sees a
    training prompt."""
    keys = prompt_hashes(_prompt_column(dataset)) if keys is None else keys
    distinct, first = np.unique(keys, return_index=True)
    if len(distinct) < 2 * n_prompts:
        raise DatasetError(f"{where}: {len(distinct)} distinct prompts: too few to hold out {n_prompts} for "
                           f"evaluation; pass --eval-dataset or --eval-split, or lower --eval-prompts")
    held = distinct[:n_prompts]  # np.unique sorts: the smallest keys
    in_held = np.isin(keys, held)
    return dataset.select(np.flatnonzero(~in_held)), dataset.select(first[:n_prompts])
