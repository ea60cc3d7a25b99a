from __future__ import annotations

from dataclasses import dataclass

from aligner import RunConfig, setting


@dataclass
class BaseSettings(RunConfig):
    """The base model as it is: an untrained (zero) LoRA adapter, evaluated like any trained policy."""

    max_steps: int = setting(1, "Unused: the base model is not trained.")
