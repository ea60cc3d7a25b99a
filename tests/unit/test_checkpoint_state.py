"""Training state in safetensors + JSON: exact round trips of what checkpoints hold, and the whole-base fingerprint."""

import random

import numpy as np
import pytest
import torch
from peft import LoraConfig, get_peft_model

from aligner.modeling import base as models
from aligner.training import checkpoints

from helpers import tiny_llama


def test_optimizer_and_rng_states_round_trip_exactly(tmp_path):
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(4))]
    optimizer = torch.optim.AdamW(params, lr=1e-3, eps=1e-5)
    for _ in range(2):
        sum((p ** 2).sum() for p in params).backward()
        optimizer.step()
    state = {"optimizer": optimizer.state_dict(), "python_rng": random.getstate(),
             "numpy_rng": np.random.get_state(), "torch_rng": torch.get_rng_state(), "kl_coef": 0.1 / 3,
             "nothing": None, "flags": [True, False], "nested": {"a": (1, 2.5, "x")}}
    checkpoints.save_state(tmp_path, "state", state)
    back = checkpoints.load_state(tmp_path, "state")

    restored = torch.optim.AdamW([torch.nn.Parameter(p.detach().clone()) for p in params], lr=1e-3, eps=1e-5)
    restored.load_state_dict(back["optimizer"])
    for key, value in optimizer.state_dict()["state"].items():
        for name, tensor in value.items():
            assert torch.equal(tensor, restored.state_dict()["state"][key][name])
    assert restored.state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    random.setstate(back["python_rng"])
    np.random.set_state(back["numpy_rng"])
    assert random.getstate() == state["python_rng"]
    assert np.array_equal(np.random.get_state()[1], state["numpy_rng"][1])
    assert torch.equal(back["torch_rng"], state["torch_rng"])
    assert back["kl_coef"] == state["kl_coef"] and back["nested"] == {"a": (1, 2.5, "x")}
    assert back["nothing"] is None and back["flags"] == [True, False]


def test_state_files_hold_no_pickle(tmp_path):
    checkpoints.save_state(tmp_path, "state", {"t": torch.ones(2)})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.safetensors"]
    assert b"\x80" not in (tmp_path / "state.json").read_bytes()[:2], "JSON, not a pickle stream"


def test_unstorable_values_are_refused(tmp_path):
    with pytest.raises(TypeError, match="cannot store a object"):
        checkpoints.save_state(tmp_path, "state", {"x": object()})


def test_dangling_tensor_reference_is_refused(tmp_path):
    checkpoints.save_state(tmp_path, "state", {"t": torch.ones(1)})
    (tmp_path / "state.json").write_text('{"t": {"__tensor__": "t9"}}')
    with pytest.raises(checkpoints.StateFileError, match="refers to tensor 't9'"):
        checkpoints.load_state(tmp_path, "state")


def test_fingerprint_sees_every_layer_and_ignores_dtype_and_adapters():
    base, _ = tiny_llama(seed=0)
    same, _ = tiny_llama(seed=0)
    fingerprint = models.base_fingerprint(base)
    assert models.base_fingerprint(same) == fingerprint
    with torch.no_grad():  # one decoder layer differs, the embeddings do not
        same.model.layers[1].mlp.down_proj.weight.add_(0.01)
    assert models.base_fingerprint(same) != fingerprint
    bf16, _ = tiny_llama(seed=0)
    assert models.base_fingerprint(bf16.to(torch.bfloat16)) == fingerprint
    wrapped = get_peft_model(tiny_llama(seed=0)[0], LoraConfig(r=4, target_modules="all-linear"))
    assert models.base_fingerprint(wrapped) == fingerprint


def test_reward_model_trained_on_a_base_differing_in_one_layer_is_refused(tmp_path):
    from aligner.reward import model as reward_model

    trained_on, tok = tiny_llama(seed=0)
    model = get_peft_model(trained_on, LoraConfig(r=4, target_modules="all-linear"))
    model.add_adapter(reward_model.REWARD_ADAPTER, LoraConfig(r=4, target_modules="all-linear"))
    head = reward_model.ScalarHead(model.config.hidden_size, zero_init=False)
    reward_model.save_reward_model(model, reward_model.RewardModel(head), tmp_path / "rm", {})

    other, _ = tiny_llama(seed=0)
    with torch.no_grad():
        other.model.layers[0].self_attn.q_proj.weight.mul_(1.5)
    other = get_peft_model(other, LoraConfig(r=4, target_modules="all-linear"))
    with pytest.raises(reward_model.RewardModelError, match="trained on different base weights"):
        reward_model.load_reward_model(other, tmp_path / "rm", torch.device("cpu"))
    same = get_peft_model(tiny_llama(seed=0)[0], LoraConfig(r=4, target_modules="all-linear"))
    reward_model.load_reward_model(same, tmp_path / "rm", torch.device("cpu"))  # the same base is accepted
