"""The prompts an online method samples from: one row per distinct prompt, with the row's other columns for a
reward that reads them (an `answer` to check), fetched a batch at a time rather than listed whole."""

from __future__ import annotations

from aligner.data.heldout import distinct_prompts


class PromptRows:
    """One row per distinct prompt of `dataset` (the first of each, in order of first appearance), every column
    kept; `take` fetches a batch of them."""

    def __init__(self, dataset):
        self.rows = distinct_prompts(dataset)

    def __len__(self) -> int:
        return len(self.rows)

    def take(self, indices: list[int]) -> tuple[list, dict[str, list]]:
        """(prompts, {column: values}) of the rows at `indices`, in that order."""
        batch = self.rows[list(indices)]
        return batch.pop("prompt"), batch


def repeat_columns(columns: dict[str, list], times: int) -> dict[str, list]:
    """Each row's values `times` times in a row, matching prompts repeated for several samples each."""
    return {name: [v for v in values for _ in range(times)] for name, values in columns.items()}
