"""Scalar heads on a base model's last hidden states: the critic's value head and the reward model's score head.

A head is a single linear layer. The value head starts at zero (Huang et al. 2024, detail 9: an untrained critic
should predict nothing rather than noise); the reward head starts small and random so pairs can be separated.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file


class ScalarHead(torch.nn.Module):
    """One linear layer from a hidden state to a scalar: a value head (`zero_init=True`) or a reward head."""

    def __init__(self, hidden_size: int, zero_init: bool, dtype=torch.float32):
        super().__init__()
        self.linear = torch.nn.Linear(hidden_size, 1, dtype=dtype)
        if zero_init:
            torch.nn.init.zeros_(self.linear.weight)
        else:
            torch.nn.init.normal_(self.linear.weight, std=1 / (hidden_size + 1) ** 0.5)
        torch.nn.init.zeros_(self.linear.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.linear(hidden.to(self.linear.weight.dtype)).squeeze(-1)

    def save(self, path: Path) -> None:
        from aligner.harness.storage import writing

        with writing(path):
            save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(path))

    def load(self, path: Path) -> None:
        self.load_state_dict(load_file(str(path)))


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """Index of the last real token of each row, for left or right padding alike."""
    length = attention_mask.shape[1]
    return length - 1 - attention_mask.flip(1).long().argmax(dim=1)
