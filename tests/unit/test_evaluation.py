import math

import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.harness import evaluation
from aligner.modeling import sampling

from helpers import randomize_lora, tiny_llama


def test_response_mask_stops_after_first_eos():
    ids = torch.tensor([[5, 6, 3, 0, 0], [5, 3, 7, 3, 0], [5, 6, 7, 8, 9]])
    expected = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    assert torch.equal(sampling.response_mask_from(ids, eos_id=3), expected)


@pytest.fixture
def policy():
    base, tok = tiny_llama()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    return model, tok


PROMPTS = ["the plot was", "it is a very", "honestly , the acting", "a"]


def test_kl_is_zero_for_the_reference_and_a_fresh_adapter(policy):
    model, tok = policy
    for use_reference in (True, False):
        result = evaluation.evaluate(model, tok, PROMPTS, lambda p, r, c: [0.0] * len(r), max_new_tokens=8,
                                     temperature=1.0, seed=0, use_reference=use_reference)
        assert result["kl"] == 0.0


def test_sequence_kl_matches_a_slow_unpadded_reference(policy):
    model, tok = policy
    randomize_lora(model)
    temperature = 0.7
    samples = evaluation.sample(model, tok, PROMPTS, max_new_tokens=8, temperature=temperature, seed=1)
    kl = evaluation.sequence_kl(model, samples, temperature)
    assert kl.abs().sum() > 0.1, "a randomized adapter must differ from the reference"
    for i, prompt in enumerate(PROMPTS):
        n = int(samples.response_mask[i].sum())
        response_ids = samples.input_ids[i, samples.prompt_length:samples.prompt_length + n]
        ids = torch.tensor([tok(prompt)["input_ids"] + response_ids.tolist()])
        start = len(tok(prompt)["input_ids"])

        def logp(m):
            logits = m(input_ids=ids).logits[0, start - 1:-1] / temperature
            return torch.log_softmax(logits, -1).gather(-1, ids[0, start:].unsqueeze(-1)).sum()

        with torch.no_grad():
            expected = logp(model)
            with model.disable_adapter():
                expected = expected - logp(model)
        assert math.isclose(kl[i].item(), expected.item(), rel_tol=1e-4, abs_tol=1e-4)


def test_sampling_is_seeded_and_leaves_global_rng_alone(policy):
    model, tok = policy
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    a = evaluation.sample(model, tok, PROMPTS, 8, 1.0, seed=4)
    assert torch.equal(torch.random.get_rng_state(), before)
    b = evaluation.sample(model, tok, PROMPTS, 8, 1.0, seed=4)
    assert a.responses == b.responses and torch.equal(a.input_ids, b.input_ids)


def test_kl_estimate_agrees_with_exact_kl_on_one_token_responses(policy):
    """With one-token responses the exact KL is a sum over the vocabulary; the sampled estimate must agree."""
    model, tok = policy
    randomize_lora(model, scale=1.0)
    prompt = "the plot was"
    ids = torch.tensor([tok(prompt)["input_ids"]])
    temperature = 0.8
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, -1] / temperature, -1)
        with model.disable_adapter():
            ref_logp = torch.log_softmax(model(input_ids=ids).logits[0, -1] / temperature, -1)
    exact = (logp.exp() * (logp - ref_logp)).sum().item()
    samples = evaluation.sample(model, tok, [prompt] * 4000, max_new_tokens=1, temperature=temperature, seed=0,
                                batch_size=1000)
    kl = evaluation.sequence_kl(model, samples, temperature)
    standard_error = kl.std().item() / len(kl) ** 0.5
    assert exact > 0.01, "the adapter must move the distribution for the comparison to mean anything"
    assert standard_error < exact / 4, "enough samples to tell the estimate from zero"
    assert abs(kl.mean().item() - exact) < 4 * standard_error, (kl.mean().item(), exact, standard_error)
