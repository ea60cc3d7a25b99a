"""Advantage estimators: what an online method is, given the one engine (`aligner.online.engine`). An estimator
turns a scored rollout into per-token advantages (and, for a method with a critic, the critic's returns).

Registered by name the way verl's `core_algos` registers its estimators: a plugin decorates its function (or
class) with `@register_estimator("name")`, and `train_online(context, "name")` looks it up. A function
`(rollout, settings) -> advantages` is a stateless estimator; a class carries state across iterations (PPO's KL
controller and score statistics), which checkpoints save and resumes restore.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch


@dataclass
class Advantages:
    advantages: torch.Tensor            # (N, R), zero on padding
    returns: torch.Tensor | None = None  # (N, R) the critic's targets, for a method with a critic
    rewards: torch.Tensor | None = None  # (N, R) per-token rewards, where the method forms them (logged)


class Estimator:
    """The interface the engine calls. `kl_in_loss`: the k3 KL to the reference is a loss term weighted by
    --kl-coef (GRPO) rather than a penalty in the reward the estimator forms."""

    kl_in_loss: bool = False
    needs_values: bool = False

    def __call__(self, rollout, settings) -> Advantages:
        raise NotImplementedError

    def observe(self, metrics: dict) -> None:
        """After each iteration, with its metrics reduced over processes (a KL controller adapts here)."""

    def metrics(self) -> dict:
        """Logged with each iteration's metrics (a KL controller's coefficient)."""
        return {}

    def summary(self) -> dict:
        """Added to the run's summary at the end."""
        return {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class FunctionEstimator(Estimator):
    """A stateless estimator from a function (rollout, settings) -> advantages tensor."""

    def __init__(self, function: Callable, kl_in_loss: bool):
        self.function, self.kl_in_loss = function, kl_in_loss

    def __call__(self, rollout, settings) -> Advantages:
        return Advantages(self.function(rollout, settings))


ESTIMATORS: dict[str, Callable[[object], Estimator]] = {}
"""name -> a factory taking the run's settings and returning a fresh `Estimator`."""


def register_estimator(name: str, kl_in_loss: bool = False):
    """Decorator: registers an advantage function (wrapped as a stateless estimator) or an `Estimator` subclass
    (built with the run's settings) under `name`."""
    def register(target):
        if isinstance(target, type) and issubclass(target, Estimator):
            ESTIMATORS[name] = target
        else:
            ESTIMATORS[name] = lambda settings: FunctionEstimator(target, kl_in_loss)
        return target
    return register


def estimator(name: str, settings) -> Estimator:
    if name not in ESTIMATORS:
        raise KeyError(f"no advantage estimator {name!r} is registered (known: {', '.join(sorted(ESTIMATORS))})")
    return ESTIMATORS[name](settings)
