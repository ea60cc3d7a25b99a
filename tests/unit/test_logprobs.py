"""The memory-lean log-prob routines (aligner.modeling.logprobs) against the straightforward full-vocabulary computation
they replace: equal to float32 rounding, in value and in gradient, on random inputs and on the toy model."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.harness.memory import TensorMemory
from aligner.modeling import logprobs
from aligner.modeling.heads import ScalarHead
from aligner.reward.model import sequence_scores

from helpers import randomize_lora, tiny_llama

ATOL = 1e-6


def straightforward(model, input_ids, attention_mask, prompt_length, temperature):
    """The previous routine: every position's float32 log-softmax over the whole vocabulary."""
    out = model(input_ids=input_ids, attention_mask=attention_mask,
                position_ids=logprobs.position_ids(attention_mask), output_hidden_states=True)
    logits = out.logits[:, prompt_length - 1:-1].float() / temperature
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, input_ids[:, prompt_length:].unsqueeze(-1)).squeeze(-1)
    entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy, out.hidden_states[-1][:, prompt_length - 1:-1]


@pytest.fixture
def policy():
    model, tok = tiny_llama()
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    randomize_lora(model, scale=0.3)
    return model, tok


def batch(vocab: int, rows: int = 3, prompt: int = 5, response: int = 7, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (rows, prompt + response), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding on one row
    return ids, mask, prompt


@pytest.mark.parametrize("chunk_bytes", [logprobs.CHUNK_BYTES, 1])  # one chunk, and one token per chunk
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_forward_equals_the_full_vocabulary_computation(policy, chunk_bytes, temperature, monkeypatch):
    model, tok = policy
    monkeypatch.setattr(logprobs, "CHUNK_BYTES", chunk_bytes)
    monkeypatch.setattr(logprobs.head_logprobs, "__defaults__", (1.0, None, chunk_bytes))
    ids, mask, p = batch(len(tok))
    lora = [q for n, q in model.named_parameters() if "lora_" in n]

    picked, entropy, hidden = straightforward(model, ids, mask, p, temperature)
    (picked.sum() + 0.1 * entropy.sum()).backward()
    expected_grads = [q.grad.clone() for q in lora]
    model.zero_grad()

    out = logprobs.response_forward(model, ids, mask, p, temperature, hidden=True, entropy="loss")
    (out.logprobs.sum() + 0.1 * out.entropy.sum()).backward()
    torch.testing.assert_close(out.logprobs, picked, atol=ATOL, rtol=0)
    torch.testing.assert_close(out.entropy, entropy, atol=ATOL, rtol=1e-6)  # float32 rounding of ~5 nats
    torch.testing.assert_close(out.hidden, hidden, atol=ATOL, rtol=0)
    assert any(g.abs().sum() > 0 for g in expected_grads)
    for q, expected in zip(lora, expected_grads):
        torch.testing.assert_close(q.grad, expected, atol=ATOL, rtol=1e-5)


def test_metric_entropy_carries_no_graph_and_the_critic_pass_skips_the_head(policy):
    model, tok = policy
    ids, mask, p = batch(len(tok))
    out = logprobs.response_forward(model, ids, mask, p, entropy="metric")
    assert out.logprobs.requires_grad and not out.entropy.requires_grad
    head = model.get_output_embeddings()
    calls = []
    handle = head.register_forward_hook(lambda m, a, o: calls.append(a[0].shape))
    critic = logprobs.response_forward(model, ids, mask, p, hidden=True, logprobs=False)
    handle.remove()
    assert critic.logprobs is None and critic.hidden.shape[:2] == (3, ids.shape[1] - p)
    assert all(shape[1] == 1 for shape in calls), f"the LM head ran over {calls}, expected the last position only"


def test_head_logprobs_on_random_inputs_with_softcapping():
    torch.manual_seed(0)
    hidden = torch.randn(4, 6, 16, requires_grad=True)
    targets = torch.randint(0, 50, (4, 6))

    class Stub(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"final_logit_softcapping": 3.0})()
            self.head = torch.nn.Linear(16, 50)

        def get_output_embeddings(self):
            return self.head

    stub = Stub()
    logits = torch.tanh(stub.head(hidden) / 3.0) * 3.0
    logp = torch.log_softmax(logits / 0.5, -1)
    expected = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    expected.sum().backward()
    expected_grad = hidden.grad.clone()
    hidden.grad = None
    got, _ = logprobs.head_logprobs(stub, hidden, targets, 0.5, chunk_bytes=4 * 50 * 5)  # 5 tokens per chunk
    got.sum().backward()
    torch.testing.assert_close(got, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(hidden.grad, expected_grad, atol=ATOL, rtol=1e-5)


def test_reward_scores_read_hidden_states_as_before(policy):
    model, tok = policy
    ids, mask, _ = batch(len(tok))
    head = ScalarHead(model.config.hidden_size, zero_init=False)
    out = model(input_ids=ids, attention_mask=mask, position_ids=logprobs.position_ids(mask),
                output_hidden_states=True)
    expected = head(out.hidden_states[-1][:, -1])
    torch.testing.assert_close(sequence_scores(model, head, ids, mask), expected, atol=ATOL, rtol=0)


def test_chunked_log_probs_never_hold_the_full_vocabulary_logits():
    """With a vocabulary much larger than the chunk, the peak of a forward and backward stays below one float32
    copy of batch x response x vocabulary, which the straightforward computation holds several of."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=8192, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128)
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, target_modules="all-linear"))
    ids, mask, p = batch(config.vocab_size, rows=8, prompt=16, response=48)
    full_logits = 8 * 48 * config.vocab_size * 4

    def peak(fn):
        """What the forward and backward add at their peak: the tensors other tests left alive do not count."""
        with TensorMemory("cpu") as memory:
            fn().sum().backward()
        model.zero_grad(set_to_none=True)
        return memory.peak_bytes - memory.start_bytes

    chunk = 4 * config.vocab_size * 64  # 64 tokens per chunk
    lean = peak(lambda: logprobs.head_logprobs(
        model, logprobs.final_hidden(model, ids, mask, p - 1)[:, :-1], ids[:, p:], chunk_bytes=chunk)[0])
    plain = peak(lambda: straightforward(model, ids, mask, p, 1.0)[0])
    assert plain > 2 * full_logits
    assert lean < full_logits, (lean, full_logits)


@pytest.mark.slow
def test_ppo_trains_the_same_adapter_with_the_full_vocabulary_routines(tmp_path, toy_world, monkeypatch):
    """A short PPO run with the lean routines and with the full-vocabulary ones they replaced (kept in
    benchmarks.perf.full_vocab for the perf suite's before/after) ends with the same policy and critic."""
    from safetensors.torch import load_file

    import aligner
    import aligner.online.rollout
    import aligner.online.update
    import aligner.reward.model
    import aligner_ppo.critic
    from benchmarks.perf import full_vocab

    settings = dict(max_steps=3, prompts_per_step=16, batch_size=8, reward_model_steps=20, eval_prompts=8,
                    eval_max_new_tokens=8, response_length=12)
    aligner.run("ppo", output_dir=str(tmp_path / "lean"), **settings)
    monkeypatch.setattr(logprobs, "response_forward", full_vocab.response_forward)
    for module in (aligner.online.rollout, aligner.online.update, aligner_ppo.critic):
        monkeypatch.setattr(module, "response_forward", full_vocab.response_forward)
    monkeypatch.setattr(aligner.reward.model, "sequence_scores", full_vocab.sequence_scores)
    aligner.run("ppo", output_dir=str(tmp_path / "full"), **settings)
    for part in ("adapter/adapter_model.safetensors", "critic/value_head.safetensors"):
        lean, full = load_file(str(tmp_path / "lean" / part)), load_file(str(tmp_path / "full" / part))
        assert lean.keys() == full.keys()
        for key in lean:
            torch.testing.assert_close(lean[key], full[key], atol=1e-6, rtol=0)


def test_the_reference_context_equals_peft_disable_adapter_and_keeps_every_trainable_parameter(policy):
    """aligner's `reference` flips peft's per-layer flag only: same outputs as peft's `disable_adapter()` (including
    a second adapter and a modules_to_save head), the adapter's output back afterwards, no `requires_grad` changed."""
    from aligner.modeling.base import reference

    model, tok = policy
    model.add_adapter("critic", LoraConfig(r=4, lora_alpha=8, target_modules="all-linear",
                                           modules_to_save=["lm_head"]))
    model.set_adapter("default")
    ids, mask = batch(tok.vocab_size)[:2]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    with torch.no_grad():
        adapted = model(input_ids=ids, attention_mask=mask).logits
        with model.disable_adapter():
            expected = model(input_ids=ids, attention_mask=mask).logits
        with reference(model):
            got = model(input_ids=ids, attention_mask=mask).logits
        after = model(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(adapted, expected), "the adapter must change the output for this test to mean anything"
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    torch.testing.assert_close(after, adapted, rtol=0, atol=0)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == trainable
