"""Sampling with the policy's LoRA merged into a copy of the weights: the same distribution to float rounding, and
every weight of the model back in place unchanged afterwards."""

import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.modeling import merged as merging
from aligner.modeling.base import reference
from aligner.modeling.logprobs import response_forward

from helpers import randomize_lora, tiny_llama


@pytest.fixture
def policy():
    model, tok = tiny_llama(seed=5)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    model.add_adapter("reward", LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    model.set_adapter("default")
    randomize_lora(model, scale=0.3)  # both adapters move the output
    model.eval()
    return model, tok


def batch(tok):
    ids = torch.randint(4, len(tok), (6, 10), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[:2, :3] = 0  # left padding on two rows
    return ids, mask


@torch.no_grad()
def test_merged_logprobs_equal_the_adapters_to_float_rounding_and_every_weight_comes_back(policy):
    model, tok = policy
    ids, mask = batch(tok)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    objects = {name: id(p) for name, p in model.named_parameters()}
    trainable = [name for name, p in model.named_parameters() if p.requires_grad]
    adapter = response_forward(model, ids, mask, 4).logprobs
    with reference(model):
        base = response_forward(model, ids, mask, 4).logprobs
    with merging.merged_adapter(model):
        merged = response_forward(model, ids, mask, 4).logprobs
    assert not torch.allclose(adapter, base, atol=1e-3), "the adapter changes the output, for the test to mean it"
    torch.testing.assert_close(merged, adapter, rtol=0, atol=1e-5)
    after = dict(model.named_parameters())
    assert {name: id(p) for name, p in after.items()} == objects, "the same tensors are back in place"
    assert all(torch.equal(before[name], after[name]) for name in before), "bit for bit"
    assert [name for name, p in after.items() if p.requires_grad] == trainable
    torch.testing.assert_close(response_forward(model, ids, mask, 4).logprobs, adapter, rtol=0, atol=0)
    with reference(model):  # the reference and the other adapter are untouched
        torch.testing.assert_close(response_forward(model, ids, mask, 4).logprobs, base, rtol=0, atol=0)


@torch.no_grad()
def test_only_the_active_adapter_is_merged(policy):
    model, tok = policy
    ids, mask = batch(tok)
    model.set_adapter("reward")
    reward = response_forward(model, ids, mask, 4).logprobs
    model.set_adapter("default")
    with merging.merged_adapter(model):
        policy_merged = response_forward(model, ids, mask, 4).logprobs
    model.set_adapter("reward")
    torch.testing.assert_close(response_forward(model, ids, mask, 4).logprobs, reward, rtol=0, atol=0)
    assert not torch.allclose(policy_merged, reward, atol=1e-3)


def test_merged_weights_are_restored_when_sampling_fails(policy):
    model, _ = policy
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(RuntimeError, match="mid-rollout"):
        with merging.merged_adapter(model):
            raise RuntimeError("mid-rollout")
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    assert not any(layer.merged for layer, _ in merging._adapted_layers(model))


def test_the_choice_of_sampling_weights(policy, monkeypatch):
    model, _ = policy
    copy = merging.merged_copy_bytes(model)
    assert copy == sum(p.numel() * 4 for n, p in model.named_parameters()
                       if "base_layer.weight" in n), "every adapted weight, float32"
    assert merging.merge_for_sampling("merged", model, sharded=False)
    assert not merging.merge_for_sampling("adapter", model, sharded=False)
    assert not merging.merge_for_sampling("merged", model, sharded=True), "a sharded model's weights are FSDP's"
    monkeypatch.setattr(merging, "device_memory_bytes", lambda device: 10 * copy)
    assert merging.merge_for_sampling("auto", model, sharded=False)
    monkeypatch.setattr(merging, "device_memory_bytes", lambda device: 10 * copy - 1)
    assert not merging.merge_for_sampling("auto", model, sharded=False)
