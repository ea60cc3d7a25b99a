"""The online engine's update: gradient accumulation changes memory, not the gradient."""

import types

import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.modeling.base import adapter_parameters
from aligner.modeling.logprobs import response_forward
from aligner.online.estimators import Advantages
from aligner.online.rollout import OnlineRollout
from aligner.online.update import update
from aligner_ppo.config import PPOSettings
from aligner_ppo.critic import build_critic

from helpers import randomize_lora, tiny_llama

N, PROMPT, RESPONSE = 8, 3, 6


class Recorder:
    """Stands in for the optimizer: keeps each step's gradients and changes no weight."""

    def __init__(self, params):
        self.params, self.steps = params, []

    def step(self):
        self.steps.append([p.grad.clone() if p.grad is not None else None for p in self.params])

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None


def one_update(accumulation: int, aggregation: str, critic: str | None, **settings) -> tuple[list, dict]:
    model, tok = tiny_llama(seed=2)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    randomize_lora(model, scale=0.2)
    cfg = PPOSettings(**{**dict(critic=critic or "shared", prompts_per_step=N, batch_size=N,
                                gradient_accumulation_steps=accumulation, loss_aggregation=aggregation,
                                max_grad_norm=1e9, entropy_coef=0.01, max_length=16, response_length=RESPONSE,
                                critic_init="zero"), **settings})
    value = build_critic(model, cfg, torch.device("cpu")) if critic else None
    params = adapter_parameters(model, "default")
    if value is not None:
        value.add_adapters(model)
        params = params + value.parameters(model)
        value.trains(params)
        randomize_lora(model, seed=3, scale=0.2)  # the critic's adapter too
        with torch.no_grad():  # a non-zero value head, so the value loss reaches every critic weight
            value.head.linear.weight.normal_(0, 0.5, generator=torch.Generator().manual_seed(4))
    for p in params:
        p.requires_grad_(True)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(4, len(tok), (N, PROMPT + RESPONSE), generator=gen)
    lengths = torch.tensor([1, 6, 2, 5, 3, 6, 4, 1])  # ragged: micro-batches hold different token counts
    mask = (torch.arange(RESPONSE)[None] < lengths[:, None]).float()
    attention = torch.cat([torch.ones(N, PROMPT), mask], dim=1).long()
    with torch.no_grad():
        logprobs = response_forward(model, ids, attention, PROMPT).logprobs
    noise = 0.3 * torch.randn(N, RESPONSE, generator=gen)
    samples = types.SimpleNamespace(input_ids=ids, attention_mask=attention, prompt_length=PROMPT)
    values = torch.randn(N, RESPONSE, generator=gen) * mask if critic else None
    rollout = OnlineRollout(samples, torch.arange(N), mask, (logprobs + noise) * mask, (logprobs - noise) * mask,
                            torch.zeros(N), torch.zeros(N), values)
    advantages = Advantages(torch.randn(N, RESPONSE, generator=gen) * mask,
                            torch.randn(N, RESPONSE, generator=gen) * mask if critic else None)
    recorder = Recorder(params)
    metrics = update(model, value, params, recorder, rollout, advantages, cfg, kl_in_loss=critic is None,
                     generator=torch.Generator().manual_seed(1), step=1, last_checkpoint=None)
    return recorder.steps, metrics


@pytest.mark.parametrize("aggregation, critic", [("token", None), ("sequence", None), ("token", "shared"),
                                                 ("sequence", "shared"), ("token", "separate")])
def test_accumulated_gradient_is_the_whole_minibatchs(aggregation, critic):
    whole = one_update(1, aggregation, critic)[0][0]
    for accumulation in (2, 4):
        accumulated = one_update(accumulation, aggregation, critic)[0][0]
        assert len(accumulated) == len(whole)
        for a, b in zip(accumulated, whole):
            assert b is not None and b.abs().sum() > 0
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_approxkl_stop_ends_the_iterations_updates_after_the_minibatch_that_passes_it():
    steps, metrics = one_update(1, "token", None, batch_size=4, epochs=2)
    assert len(steps) == 4 and metrics["policy/early_stopped"] == 0.0, "2 minibatches x 2 epochs"
    assert metrics["policy/approxkl"] > 1e-3, "old log-probs differ from the policy's, for the stop to fire"
    steps, metrics = one_update(1, "token", None, batch_size=4, epochs=2, approxkl_stop=1e-3)
    assert len(steps) == 1 and metrics["policy/early_stopped"] == 1.0
