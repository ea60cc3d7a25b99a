"""Every PPO role on one PeftModel: policy = adapter `default`, critic = value head on the policy's hidden states
(shared) or adapter `critic` + value head (separate), reward model = adapter `reward` + head, reference = the base
with adapters disabled."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aligner.api import ResponseForward, ScalarHead, active_adapter, adapter_parameters, response_forward

POLICY, CRITIC = "default", "critic"


def forward(model, input_ids, attention_mask, prompt_length: int, temperature: float, hidden: bool) -> ResponseForward:
    return response_forward(model, input_ids, attention_mask, prompt_length, temperature, hidden)


@dataclass
class Roles:
    model: torch.nn.Module
    value_head: ScalarHead
    critic: str
    trainable: list[torch.nn.Parameter] = field(default_factory=list)

    @classmethod
    def build(cls, model, critic: str, device) -> "Roles":
        head = ScalarHead(model.config.hidden_size, zero_init=True).to(device)
        roles = cls(model, head, critic)
        roles.refresh_trainable()
        return roles

    def refresh_trainable(self) -> None:
        params = adapter_parameters(self.model, POLICY)
        if self.critic == "separate":
            params += adapter_parameters(self.model, CRITIC)
        self.trainable = params + list(self.value_head.parameters())
        for p in self.trainable:
            p.requires_grad_(True)

    def policy_and_values(self, input_ids, attention_mask, prompt_length, temperature) -> tuple[ResponseForward, torch.Tensor]:
        """Policy log-probs and critic values. Shared: one forward, the value head reads the policy's hidden states
        (so the value loss also trains the policy adapter). Separate: a second forward with the critic adapter."""
        if self.critic == "shared":
            out = forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=True)
            return out, self.value_head(out.hidden)
        out = forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False)
        with active_adapter(self.model, CRITIC, self.trainable):
            critic_out = forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=True)
        return out, self.value_head(critic_out.hidden)

    @torch.no_grad()
    def reference_logprobs(self, input_ids, attention_mask, prompt_length, temperature) -> torch.Tensor:
        with self.model.disable_adapter():
            return forward(self.model, input_ids, attention_mask, prompt_length, temperature, hidden=False).logprobs
