"""The hooks a plugin can implement. Each takes one `register` callback, so every plugin has the same contract
whether it contributes one thing or many (the style of simonw/llm)."""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("aligner")
hookimpl = pluggy.HookimplMarker("aligner")
"""Marks a plugin's hook implementations: `@hookimpl def register_algorithms(register): ...`."""


@hookspec
def register_algorithms(register):
    """Register training algorithms: call `register(aligner.Algorithm(...))` once for each."""


@hookspec
def register_reward_functions(register):
    """Register reward functions (gold scorers, PPO rewards): call `register(aligner.RewardFunction(...))`."""
