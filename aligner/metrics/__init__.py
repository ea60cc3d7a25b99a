"""aligner's evaluation metrics as Hugging Face `evaluate` modules, shipped inside the package and loaded offline.

Each metric is a folder `<name>/<name>.py` (the layout `evaluate.load` reads for a local module), self-contained: it
imports nothing from aligner, because `evaluate` copies only the module file into its modules cache
(`HF_MODULES_CACHE`, by default `~/.cache/huggingface/modules`) and imports it from there. `evaluate` itself is
imported only when a metric is loaded (it takes seconds).
"""

from __future__ import annotations

from pathlib import Path

MODULES_DIR = Path(__file__).resolve().parent
NAMES = tuple(sorted(p.name for p in MODULES_DIR.iterdir() if (p / f"{p.name}.py").is_file()))


def path(name: str) -> Path:
    """The module folder of the built-in metric `name`, as `evaluate.load` takes it."""
    if name not in NAMES:
        raise ValueError(f"unknown metric {name!r}; aligner's metrics: {', '.join(NAMES)}")
    return MODULES_DIR / name


def load(name: str, **kwargs):
    """`evaluate.load` of the built-in metric `name`: read from the package's folder, never the hub. Inputs are kept
    in memory unless `keep_in_memory=False` or `num_process` > 1 is given: one process computing at once needs no
    cache files or locks."""
    import evaluate

    from aligner.harness import storage

    kwargs.setdefault("keep_in_memory", kwargs.get("num_process", 1) == 1)
    try:
        return evaluate.load(str(path(name)), **kwargs)
    except Exception as error:
        found = storage.fault(error)
        if found is None:
            raise
        raise storage.StorageError(f"loading aligner's {name} metric: evaluate copies it into its modules cache "
                                   f"(HF_MODULES_CACHE), which cannot be written: {storage.describe(found)}") from None
