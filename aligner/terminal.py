"""What the terminal shows around errors."""

from __future__ import annotations


def end_progress_bars() -> None:
    """Closes progress bars an exception left open, so the message that follows starts on its own line instead
    of being glued to a bar's last refresh."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):
        bar.close()
