"""PPO's critic, the part the online engine runs only for a method that has one: a value head on the policy's
hidden states (`shared`), or its own LoRA adapter plus a value head (`separate`), both on the one base. The engine
calls the methods below; the value loss and its diagnostics are in `loss`."""

from __future__ import annotations

from pathlib import Path

import torch
from peft import set_peft_model_state_dict
from safetensors.torch import load_file

from aligner.api import (REWARD_ADAPTER, ResponseForward, ScalarHead, active_adapter, adapter_parameters,
                         add_adapter, masked_mean, response_forward, save_adapter)
from aligner_ppo.loss import ValueLoss, explained_variance, value_loss

CRITIC = "critic"
FOLDER = "critic"
"""The critic's folder in a checkpoint and in the run directory: `value_head.safetensors`, and `adapter/` for a
separate critic."""


class Critic:
    """What both critics share: the value head, its loss and metrics, and saving and loading."""

    name: str
    adapters: tuple[str, ...] = ()

    def __init__(self, model, settings, device):
        self.head = ScalarHead(model.config.hidden_size, zero_init=True).to(device)
        self.vf_coef, self.cliprange_value, self.init = settings.vf_coef, settings.cliprange_value, settings.critic_init
        self.trainable: list[torch.nn.Parameter] = []

    @property
    def separate(self) -> bool:
        """Its own forward pass (and so its own backward), after the policy's."""
        return bool(self.adapters)

    def add_adapters(self, model) -> None:
        """Adds the critic's adapters once (a sharded run adds them before sharding, every run after the reward
        model, so an unsharded run draws its random initialisation where it always did)."""
        for name in self.adapters:
            if name not in model.peft_config:
                add_adapter(model, name)

    def start(self, context, model, reward) -> None:
        """With `--critic-init reward`, a separate critic's adapter and value head start as the reward model's
        (Ouyang et al. 2022); otherwise from scratch, the head at zero."""
        if not self.adapters or self.init != "reward" or reward is None:
            return
        with torch.no_grad():
            named = dict(model.named_parameters())
            for name in self.adapters:
                for param_name, param in named.items():
                    if f".{name}." in param_name:
                        param.copy_(named[param_name.replace(f".{name}.", f".{REWARD_ADAPTER}.")])
        self.head.load_state_dict(reward.head.state_dict())

    def parameters(self, model) -> list[torch.nn.Parameter]:
        """The critic's trainable parameters: its adapters' LoRA weights, then the value head's."""
        params = [p for name in self.adapters for p in adapter_parameters(model, name)]
        return params + list(self.head.parameters())

    def trains(self, params: list[torch.nn.Parameter]) -> None:
        """Every parameter the run trains: switching to the critic's adapter must leave them all trainable."""
        self.trainable = params

    def value_loss(self, values, old_values, returns, mask) -> ValueLoss:
        return value_loss(values, old_values, returns, mask, self.cliprange_value)

    def metrics(self, rollout, advantages) -> dict:
        return {"val/explained_variance": explained_variance(rollout.values, advantages.returns, rollout.mask).item(),
                "val/mean": masked_mean(rollout.values, rollout.mask).item()}

    def save(self, model, folder: Path) -> None:
        out = folder / FOLDER
        for name in self.adapters:
            save_adapter(model, name, out / "adapter")
        out.mkdir(parents=True, exist_ok=True)
        self.head.save(out / "value_head.safetensors")

    def load(self, model, folder: Path) -> None:
        for name in self.adapters:
            set_peft_model_state_dict(model, load_file(folder / FOLDER / "adapter" / "adapter_model.safetensors"),
                                      adapter_name=name)
        self.head.load(folder / FOLDER / "value_head.safetensors")


class SharedCritic(Critic):
    """A value head on the policy's last hidden states, in the same forward pass: cheapest, and the value loss also
    trains the policy adapter."""

    name = "shared"

    def policy_and_values(self, model, input_ids, attention_mask, prompt_length, temperature,
                          entropy: str | None = None) -> tuple[ResponseForward, torch.Tensor]:
        out = response_forward(model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                               entropy=entropy)
        return out, self.head(out.hidden)

    def values(self, model, input_ids, attention_mask, prompt_length, temperature) -> torch.Tensor:
        out = response_forward(model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                               logprobs=False)  # hidden states only: no LM head
        return self.head(out.hidden)


class SeparateCritic(Critic):
    """Its own LoRA adapter plus the value head, in a second forward pass: the value loss does not reach the
    policy."""

    name = "separate"
    adapters = (CRITIC,)

    def policy_and_values(self, model, input_ids, attention_mask, prompt_length, temperature,
                          entropy: str | None = None) -> tuple[ResponseForward, torch.Tensor]:
        out = response_forward(model, input_ids, attention_mask, prompt_length, temperature, entropy=entropy)
        return out, self.values(model, input_ids, attention_mask, prompt_length, temperature)

    def values(self, model, input_ids, attention_mask, prompt_length, temperature) -> torch.Tensor:
        with active_adapter(model, CRITIC, self.trainable):  # hidden states only: no LM head
            out = response_forward(model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                                   logprobs=False)
        return self.head(out.hidden)


CRITICS = {critic.name: critic for critic in (SharedCritic, SeparateCritic)}
"""`--critic` choices."""


def build_critic(model, settings, device) -> Critic:
    return CRITICS[settings.critic](model, settings, device)
