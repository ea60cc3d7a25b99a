"""A run's data: datasets from files, folders or the hub, in every layout TRL names, normalised, checked in Arrow
batches, and split into training rows and held-out evaluation rows (see docs/data.md).

- `sources`: where rows come from (files, dataset folders, save_to_disk folders, hub ids; configs and splits);
- `layouts`: which layout rows are in and how each becomes its normal form (`kinds`: their names);
- `rows`: broken rows refused, rows that cannot train dropped and counted;
- `heldout`: `--max-samples`, distinct prompts, the held-out split; `prompts`: what online methods sample from;
- `prepare`: all of it for one run, and what needs the tokenizer (chat templates, truncation counts).

Only the layout names are imported here, so that registering a plugin imports no pyarrow.
"""

from aligner.data.kinds import LAYOUTS, PREFERENCE, PROMPT, UNPAIRED

__all__ = ["LAYOUTS", "PREFERENCE", "PROMPT", "UNPAIRED"]
