"""The one sampler: it samples from the plain softmax at the temperature whatever the model's generation_config.json
says, and it never lets a prompt grow without bound."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.modeling import sampling

from helpers import tiny_llama

PROMPTS = ["the movie was", "a very", "this film is not", "the plot"]

LEAKY = dict(repetition_penalty=1.3, no_repeat_ngram_size=2, min_p=0.3, top_k=5, top_p=0.5, min_new_tokens=6,
             suppress_tokens=[7, 8, 9], temperature=0.2)
"""Sampling settings a model may ship in generation_config.json; each changes the sampled distribution."""


def tampered(model):
    for key, value in LEAKY.items():
        setattr(model.generation_config, key, value)
    return model


@pytest.mark.parametrize("wrapped", [False, True])
def test_model_generation_config_does_not_leak_into_sampling(wrapped):
    clean, tok = tiny_llama(seed=3)
    leaky, _ = tiny_llama(seed=3)
    tampered(leaky)
    if wrapped:
        clean = get_peft_model(clean, LoraConfig(r=4, target_modules="all-linear"))
        leaky = get_peft_model(leaky, LoraConfig(r=4, target_modules="all-linear"))
    kwargs = dict(max_new_tokens=12, temperature=1.0, seed=5)
    expected = sampling.sample(clean, tok, PROMPTS * 8, **kwargs)
    got = sampling.sample(leaky, tok, PROMPTS * 8, **kwargs)
    assert torch.equal(expected.input_ids, got.input_ids)
    inner = leaky.get_base_model() if wrapped else leaky
    assert inner.generation_config.repetition_penalty == 1.3, "the model's own config is restored afterwards"


def test_plain_generate_would_have_leaked():
    """The test above can fail: generate() with only temperature/top-k/top-p given samples differently."""
    clean, tok = tiny_llama(seed=3)
    leaky, _ = tiny_llama(seed=3)
    tampered(leaky)
    enc = tok(PROMPTS * 8, return_tensors="pt", padding=True, padding_side="left")
    outs = []
    for model in (clean, leaky):
        torch.manual_seed(5)
        outs.append(model.generate(**enc, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=12,
                                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id))
    assert not torch.equal(outs[0], outs[1])


def test_long_prompts_keep_their_end_and_bos():
    model, tok = tiny_llama()
    words = " ".join(["very"] * 10_000) + " the movie was"
    samples = sampling.sample(model, tok, [words, "bad"], max_new_tokens=4, temperature=1.0, seed=0,
                              max_prompt_tokens=16)
    assert samples.prompt_length == 16
    first = samples.input_ids[0, :16].tolist()
    assert first[0] == tok.bos_token_id
    assert first[-3:] == tok("the movie was", add_special_tokens=False)["input_ids"]
    short = samples.input_ids[1, :16]
    assert (short[:-2] == tok.pad_token_id).all(), "a short prompt is left-padded, not cut"


def test_keep_end():
    assert sampling.keep_end([1, 5, 6, 7, 8], 3, bos_id=1) == [1, 7, 8]
    assert sampling.keep_end([5, 6, 7, 8], 3, bos_id=1) == [6, 7, 8]
    assert sampling.keep_end([1, 5], 3, bos_id=1) == [1, 5]


def test_chunked_sampling_equals_one_batch():
    """Evaluation samples in chunks; the chunk size must not change the draw's shape or masks."""
    model, tok = tiny_llama()
    one = sampling.sample(model, tok, PROMPTS, max_new_tokens=6, temperature=1.0, seed=2)
    chunked = sampling.sample(model, tok, PROMPTS, max_new_tokens=6, temperature=1.0, seed=2, batch_size=4)
    assert torch.equal(one.input_ids, chunked.input_ids)
    assert one.has_eos.tolist() == [bool((r == tok.eos_token_id).any()) for r in one.response_ids]


def test_ppo_and_evaluation_cut_long_prompts(tmp_path, toy_world, monkeypatch):
    """A 3,000-word prompt once took a rollout past 6 GB; now every sampled prompt fits --max-length."""
    import json

    import aligner
    from aligner.online import rollout

    rows = [{"prompt": " ".join(["very"] * 3000) + f" the movie {'was ' * (i % 5)}",
             "chosen": " good", "rejected": " bad"} for i in range(5)]
    rows = [dict(r, prompt=r["prompt"] + " " + w) for r in rows for w in ("good", "bad", "plot", "film")]
    path = tmp_path / "long.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lengths = []
    real = sampling.sample

    def spy(*args, **kwargs):
        samples = real(*args, **kwargs)
        lengths.append((kwargs["max_new_tokens"], samples.prompt_length))
        return samples

    monkeypatch.setattr(rollout, "sample", spy)
    monkeypatch.setattr(sampling, "sample", spy)
    aligner.run("ppo", dataset=str(path), reward="gold", max_steps=1, prompts_per_step=8, batch_size=8,
                response_length=8, max_length=32, eval_prompts=4, eval_max_new_tokens=4,
                output_dir=str(tmp_path / "run"), verbose=False)
    assert (8, 24) in lengths, "rollout prompts are cut to max-length minus response-length"
    assert (4, 32) in lengths, "evaluation prompts are cut to max-length"
    assert all(length <= 32 for _, length in lengths)


@pytest.mark.parametrize("temperature,batch_size,cache", [(1.0, None, "dynamic"), (0.7, 8, "dynamic"),
                                                          (1.3, None, "static")])
def test_sampled_logprobs_equal_a_forward_pass_and_leave_the_draw_unchanged(temperature, batch_size, cache):
    """The log-probs kept while sampling are those a full forward pass over prompt + response computes (what the
    online update would otherwise recompute), to float rounding; keeping them changes no sampled token."""
    from aligner.modeling.logprobs import response_forward

    model, tok = tiny_llama(seed=3)
    common = sampling.sample(model, tok, PROMPTS * 8, max_new_tokens=12, temperature=1.0, seed=0).response_ids
    with torch.no_grad():  # EOS as likely as the most sampled token, so that responses end at several lengths
        head = model.get_output_embeddings().weight
        head[tok.eos_token_id] = head[common.flatten().mode().values]
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    kwargs = dict(max_new_tokens=12, temperature=temperature, seed=5, batch_size=batch_size, cache=cache)
    plain = sampling.sample(model, tok, PROMPTS * 8, **kwargs)
    kept = sampling.sample(model, tok, PROMPTS * 8, logprobs=True, **kwargs)
    assert plain.logprobs is None
    assert torch.equal(plain.input_ids, kept.input_ids)
    with torch.no_grad():
        forward = response_forward(model, kept.input_ids, kept.attention_mask, kept.prompt_length,
                                   temperature).logprobs
    mask = kept.response_mask.bool()
    assert mask.sum() > 100 and (~mask).any(), "responses of several lengths, some ended by EOS"
    assert (kept.logprobs[~mask] == 0).all()
    torch.testing.assert_close(kept.logprobs[mask], forward[mask], atol=2e-5, rtol=0)
    assert (kept.logprobs[mask] < 0).all()


def test_old_logprobs_come_from_the_sampler_in_float32_only():
    from aligner.online.rollout import sampler_logprobs

    model, _ = tiny_llama()
    assert sampler_logprobs("auto", model) and sampler_logprobs("sampler", model)
    assert not sampler_logprobs("recompute", model)
    half = get_peft_model(tiny_llama()[0].to(torch.bfloat16), LoraConfig(r=4, target_modules="all-linear"))
    assert any(p.dtype == torch.float32 for p in half.parameters()), "peft keeps the adapters in float32"
    assert not sampler_logprobs("auto", half)
    assert not sampler_logprobs("auto", model.to(torch.bfloat16))
