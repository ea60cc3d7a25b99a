"""aligner: LoRA alignment algorithms on one frozen base model, and an honest way to compare them."""

from aligner.hookspecs import hookimpl
from aligner.registry import Algorithm, RewardFunction

__version__ = "0.1.0"


def run(algorithm: str, config=None, **settings) -> dict:
    """Trains `algorithm` and returns its summary (see `aligner.runner.run`)."""
    from aligner.runner import run as _run

    return _run(algorithm, config, **settings)


__all__ = ["Algorithm", "RewardFunction", "hookimpl", "run", "__version__"]
