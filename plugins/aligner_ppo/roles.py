"""Every PPO role on one PeftModel: policy = adapter `default`, critic = value head on the policy's hidden states
(shared) or adapter `critic` + value head (separate), reward model = adapter `reward` + head, reference = the base
with adapters disabled."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from aligner.heads import ScalarHead
from aligner.models import active_adapter, adapter_parameters

POLICY, CRITIC = "default", "critic"


@dataclass
class Forward:
    logprobs: torch.Tensor  # (batch, response) log p of the sampled tokens, at the sampling temperature
    logits: torch.Tensor    # (batch, response, vocab), temperature applied
    hidden: torch.Tensor | None


def forward(model, input_ids, attention_mask, prompt_length: int, temperature: float, hidden: bool) -> Forward:
    """One pass over prompt+response; position ids follow the attention mask, as in generation with left padding."""
    positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
                output_hidden_states=hidden)
    logits = out.logits[:, prompt_length - 1:-1].float() / temperature
    targets = input_ids[:, prompt_length:]
    logprobs = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    states = out.hidden_states[-1][:, prompt_length - 1:-1] if hidden else None
    return Forward(logprobs, logits, states)


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

    def policy_and_values(self, input_ids, attention_mask, prompt_length, temperature) -> tuple[Forward, torch.Tensor]:
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
