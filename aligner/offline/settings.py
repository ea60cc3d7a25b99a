"""The settings every offline method shares, importable without torch (plugin settings are read when `aligner
plugins` lists them)."""

from __future__ import annotations

from dataclasses import dataclass

from aligner.config import CheckpointSettings, ConfigError, setting


@dataclass
class OfflineSettings(CheckpointSettings):
    """What aligner's offline engine reads beyond the checkpoint settings: the learning-rate schedule and gradient
    clipping."""

    lr_scheduler: str = setting("linear", "Learning-rate schedule: linear (down to zero at the last step, TRL's "
                                          "default) or constant.", choices=("linear", "constant"))
    max_grad_norm: float = setting(1.0, "Gradient clipping norm.")
    save_every: int = setting(50, "Write a checkpoint every this many optimizer steps (and at the end).")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["max_grad_norm"])


@dataclass
class TRLComparableSettings(OfflineSettings):
    """An offline method TRL also implements: aligner's engine trains it by default, TRL's trainer on request, as
    the reference implementation the tests hold aligner's loss and gradients to."""

    implementation: str = setting("aligner", "aligner: aligner's offline engine (checkpoints, --resume, the LM head "
                                             "on response tokens only); trl: TRL's trainer for this method (no "
                                             "checkpoints, no --resume).", choices=("aligner", "trl"))

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.implementation == "trl" and self.resume:
            raise ConfigError("--resume needs --implementation aligner: runs through TRL's trainers write no "
                              "checkpoints")
