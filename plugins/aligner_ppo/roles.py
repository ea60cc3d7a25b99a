"""Every PPO role on one PeftModel: policy = adapter `default`, critic = value head on the policy's hidden states
(shared) or adapter `critic` + value head (separate), reward model = adapter `reward` + head, reference = the base
with adapters disabled."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aligner.api import ResponseForward, ScalarHead, active_adapter, adapter_parameters, reference, response_forward

POLICY, CRITIC = "default", "critic"


def forward(model, input_ids, attention_mask, prompt_length: int, temperature: float, hidden: bool,
            entropy: str | None = None, logprobs: bool = True) -> ResponseForward:
    return response_forward(model, input_ids, attention_mask, prompt_length, temperature, hidden=hidden,
                            entropy=entropy, logprobs=logprobs)


class SharedCritic:
    """A value head on the policy's last hidden states, in the same forward pass: cheapest, and the value loss also
    trains the policy adapter."""

    name = "shared"
    adapters: tuple[str, ...] = ()

    def policy_and_values(self, roles: "Roles", input_ids, attention_mask, prompt_length, temperature, entropy):
        out = forward(roles.model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                      entropy=entropy)
        return out, roles.value_head(out.hidden)


class SeparateCritic:
    """Its own LoRA adapter plus the value head, in a second forward pass: the value loss does not reach the
    policy."""

    name = "separate"
    adapters: tuple[str, ...] = (CRITIC,)

    def policy_and_values(self, roles: "Roles", input_ids, attention_mask, prompt_length, temperature, entropy):
        out = forward(roles.model, input_ids, attention_mask, prompt_length, temperature, hidden=False,
                      entropy=entropy)
        return out, self.values(roles, input_ids, attention_mask, prompt_length, temperature)

    def values(self, roles: "Roles", input_ids, attention_mask, prompt_length, temperature):
        with active_adapter(roles.model, CRITIC, roles.trainable):  # hidden states only: no LM head
            critic_out = forward(roles.model, input_ids, attention_mask, prompt_length, temperature, hidden=True,
                                 logprobs=False)
        return roles.value_head(critic_out.hidden)


CRITICS = {critic.name: critic for critic in (SharedCritic, SeparateCritic)}
"""`--critic` choices."""


@dataclass
class Roles:
    model: torch.nn.Module
    value_head: ScalarHead
    critic: SharedCritic | SeparateCritic
    trainable: list[torch.nn.Parameter] = field(default_factory=list)

    @classmethod
    def build(cls, model, critic: str, device) -> "Roles":
        head = ScalarHead(model.config.hidden_size, zero_init=True).to(device)
        roles = cls(model, head, CRITICS[critic]())
        roles.refresh_trainable()
        return roles

    def refresh_trainable(self) -> None:
        """The parameters PPO trains: the policy adapter, the critic's adapters and the value head. Called again
        whenever parameters are replaced (sharding) or an adapter is added."""
        params = adapter_parameters(self.model, POLICY)
        for name in self.critic.adapters:
            if name in self.model.peft_config:
                params += adapter_parameters(self.model, name)
        self.trainable = params + list(self.value_head.parameters())
        for p in self.trainable:
            p.requires_grad_(True)

    def policy_and_values(self, input_ids, attention_mask, prompt_length, temperature, entropy: str | None = None
                          ) -> tuple[ResponseForward, torch.Tensor]:
        """Policy log-probs at `temperature` (and the entropy, if asked: "metric" or "loss") and the critic's
        values, for one rollout batch."""
        return self.critic.policy_and_values(self, input_ids, attention_mask, prompt_length, temperature, entropy)

    def policy(self, input_ids, attention_mask, prompt_length, temperature, entropy: str | None = None
               ) -> ResponseForward:
        """The policy's forward alone (a separate critic's values come from `values`)."""
        return forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False,
                       entropy=entropy)

    def values(self, input_ids, attention_mask, prompt_length, temperature) -> torch.Tensor:
        """A separate critic's values, from its own forward pass."""
        return self.critic.values(self, input_ids, attention_mask, prompt_length, temperature)

    @torch.no_grad()
    def reference_logprobs(self, input_ids, attention_mask, prompt_length, temperature) -> torch.Tensor:
        with reference(self.model):
            return forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False).logprobs
