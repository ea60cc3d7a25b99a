"""PPO's training: aligner's online engine with a critic (`critic.py`) and GAE (`GAEEstimator`, from the pure
functions of `advantages.py`). The rollout, reference pass, clipped update, checkpoints, resume and sharding are the
engine's, as for every online method."""

from __future__ import annotations

import torch

from aligner.api import (Advantages, Estimator, check_online, masked_whiten, reduce_metrics, register_estimator,
                         train_online, world_size)
from aligner_ppo.advantages import AdaptiveKLController, FixedKLController, RunningMoments, gae, token_rewards
from aligner_ppo.critic import build_critic

METHOD = "ppo"


def pooled_moments(scores: torch.Tensor) -> tuple[float, float, int]:
    """Mean, population variance and count of every process's scores together (one all-reduce of count, sum and
    squares), so that data-parallel processes normalise alike."""
    xs = scores.double()
    sums = reduce_metrics({"n": xs.numel(), "sum": xs.sum().item(), "squares": (xs * xs).sum().item()},
                          summed=("n", "sum", "squares"))
    n = int(sums["n"])
    mean = sums["sum"] / n
    return mean, max(sums["squares"] / n - mean ** 2, 0.0), n


@register_estimator(METHOD)
class GAEEstimator(Estimator):
    """PPO's advantages: scores (optionally normalised by their running moments), a per-token KL penalty whose
    coefficient a controller may adapt, GAE over the critic's values, whitened. Its state (the controller's
    coefficient, the running moments) is saved in checkpoints."""

    needs_values = True

    def __init__(self, settings):
        self.kl_controller = (AdaptiveKLController(settings.kl_coef, settings.target_kl, settings.kl_horizon)
                              if settings.adaptive_kl else FixedKLController(settings.kl_coef))
        self.moments = RunningMoments()

    def __call__(self, rollout, settings) -> Advantages:
        scores, mask = rollout.scores, rollout.mask
        if settings.normalize_scores:
            if world_size() > 1:
                self.moments.combine(*pooled_moments(scores))
            else:
                self.moments.update(scores)
            scores = (scores - self.moments.mean) / self.moments.std
        rewards, _ = token_rewards(rollout.old_logprobs, rollout.ref_logprobs, scores, mask, self.kl_controller.value,
                                   settings.kl_estimator)
        if settings.whiten_rewards:
            rewards = masked_whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, rollout.values, mask, settings.gamma, settings.lam)
        return Advantages(masked_whiten(advantages, mask), returns, rewards)

    def observe(self, metrics: dict) -> None:
        """The controller tracks the sequence KL (k1, `objective/kl`) of the samples just taken."""
        self.kl_controller.update(metrics["objective/kl"], int(metrics["rollout/samples"]))

    def metrics(self) -> dict:
        return {"objective/kl_coef": self.kl_controller.value}

    def summary(self) -> dict:
        return {"final_kl_coef": self.kl_controller.value}

    def state_dict(self) -> dict:
        return {"kl_coef": self.kl_controller.value, "moments": self.moments.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.kl_controller.value = state["kl_coef"]
        self.moments.load_state_dict(state["moments"])



def train(context):
    cfg = context.config
    return train_online(context, METHOD, build_critic, name=f"ppo ({cfg.critic} critic)")


def check(config, registry) -> None:
    """Before anything loads: the reward source exists, and a checkpoint to resume is PPO's with this critic and
    these settings."""
    check_online(config, registry, METHOD, critic=config.critic)
