"""PPO end to end on the toy world: both critic modes, gradient routing, one base copy, resume, bad input."""

import json
from collections import Counter

import pytest
import torch
from peft import LoraConfig, get_peft_model
from safetensors.torch import load_file

import aligner
from aligner import plugins
from aligner.cli import main
from aligner.errors import TrainingError
from aligner.registry import RewardFunction
from aligner.modeling.base import adapter_parameters
from aligner_ppo.config import PPOSettings
from aligner_ppo.critic import build_critic

from helpers import base_weight_storages, tiny_llama

FAST = dict(max_steps=3, prompts_per_step=16, batch_size=8, reward_model_steps=10, eval_prompts=16,
            eval_max_new_tokens=8, response_length=12)


def lora_grads(model, adapter):
    return [p.grad for n, p in model.named_parameters() if f".{adapter}." in n and "lora_" in n]


def nonzero(grads):
    return any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.fixture
def rollout_like():
    ids = torch.tensor([[0, 2, 10, 11, 12, 3], [2, 13, 14, 15, 16, 17]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
    return ids, mask, 3


@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_value_loss_gradient_reaches_policy_only_when_shared(critic, rollout_like):
    from aligner.modeling.base import add_adapter

    base, _ = tiny_llama()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    if critic == "separate":
        add_adapter(model, "critic")
    value = build_critic(model, PPOSettings(critic=critic), torch.device("cpu"))
    trainable = adapter_parameters(model, "default") + value.parameters(model)
    value.trains(trainable)
    with torch.no_grad():  # non-zero LoRA B and value head, so every path carries gradient
        for p in trainable:
            p.normal_(0, 0.1)
    ids, mask, prompt_length = rollout_like
    out, values = value.policy_and_values(model, ids, mask, prompt_length, 1.0)
    (values ** 2).mean().backward()
    assert nonzero(lora_grads(model, "default")) == (critic == "shared")
    if critic == "separate":
        assert nonzero(lora_grads(model, "critic"))

    # Both losses in one backward: every trainable adapter must get a gradient (the peft set_adapter trap).
    model.zero_grad()
    value.head.zero_grad()
    out, values = value.policy_and_values(model, ids, mask, prompt_length, 1.0)
    (out.logprobs.sum() + values.sum()).backward()
    assert nonzero(lora_grads(model, "default"))
    if critic == "separate":
        assert nonzero(lora_grads(model, "critic"))
    before = [p.detach().clone() for p in trainable]
    torch.optim.SGD(trainable, lr=0.1).step()
    changed = [not torch.equal(a, p) for a, p in zip(before, trainable)]
    assert all(changed), "every trainable tensor (policy, critic, value head) moves in an optimizer step"



@pytest.mark.parametrize("critic", ["shared", "separate"])
def test_ppo_trains_both_critic_modes_on_one_base(tmp_path, monkeypatch, critic, toy_world):
    from aligner.modeling import base as models
    from aligner.online import engine

    base, _ = models.load_base("aligner-toy", models.placement("cpu"))
    base_shapes = Counter(tuple(p.shape) for p in base.parameters() if p.dim() == 2)
    del base
    seen = {}
    original = engine.update

    def update(model, *args, **kwargs):
        if "storages" not in seen:
            seen["adapters"] = sorted(model.peft_config)
            seen["storages"] = base_weight_storages()
        return original(model, *args, **kwargs)

    monkeypatch.setattr(engine, "update", update)
    out = tmp_path / "run"
    summary = aligner.run("ppo", critic=critic, output_dir=str(out), verbose=False, save_every=2, **FAST)

    expected_adapters = ["critic", "default", "reward"] if critic == "separate" else ["default", "reward"]
    assert seen["adapters"] == expected_adapters, "policy, (critic,) reward model live on one PeftModel"
    for shape, n in base_shapes.items():
        assert seen["storages"][shape] == n, f"{shape}: {seen['storages'][shape]} storages, one base has {n}"

    assert summary["variant"] == f"critic={critic}" and summary["kl"] > 0
    assert 0 <= summary["reward_model_accuracy"] <= 1
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    assert (out / "reward_model" / "reward_model.json").exists()
    assert (out / "critic" / "value_head.safetensors").exists()
    assert (out / "critic" / "adapter").exists() == (critic == "separate")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step-000002", "step-000003"]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ppo_rows = [r for r in rows if r["step"] > 0]
    assert [r["step"] for r in ppo_rows] == [1, 2, 3]
    for key in ("objective/kl", "objective/entropy", "objective/scores", "objective/rlhf_reward", "policy/approxkl",
                "policy/clipfrac", "loss/policy", "loss/value", "val/explained_variance", "val/clipfrac",
                "time/rollout", "time/update", "tokens_per_second"):
        assert key in ppo_rows[-1], key


@pytest.mark.slow
def test_reward_model_beats_chance_on_held_out_pairs(tmp_path, toy_world):
    summary = aligner.run("reward", output_dir=str(tmp_path / "rm"), verbose=False, max_steps=150)
    assert summary["reward_model_heldout_pairs"] > 100
    assert summary["reward_model_accuracy"] > 0.58, summary
    assert summary["gold_reward_after"] is None, "a reward model run evaluates no policy"
    meta = json.loads((tmp_path / "rm" / "reward_model" / "reward_model.json").read_text())
    assert meta["reward_model_accuracy"] == summary["reward_model_accuracy"]


def test_resume_after_kill_matches_uninterrupted_run(tmp_path, monkeypatch, toy_world):
    from aligner.online import engine

    settings = dict(FAST, max_steps=4, save_every=2, reward="gold", critic="separate", critic_init="zero")
    aligner.run("ppo", output_dir=str(tmp_path / "whole"), verbose=False, **settings)

    original, calls = engine.update, {"n": 0}

    def dies_in_iteration_3(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "update", dies_in_iteration_3)
    with pytest.raises(KeyboardInterrupt):
        aligner.run("ppo", output_dir=str(tmp_path / "killed"), verbose=False, **settings)
    monkeypatch.setattr(engine, "update", original)
    partial = next(tmp_path.glob(".killed.partial-*"))
    assert not (tmp_path / "killed").exists(), "a killed run publishes nothing"
    aligner.run("ppo", output_dir=str(tmp_path / "resumed"), verbose=False, resume=str(partial), **settings)

    for part in ("adapter/adapter_model.safetensors", "critic/adapter/adapter_model.safetensors",
                 "critic/value_head.safetensors"):
        whole, resumed = load_file(tmp_path / "whole" / part), load_file(tmp_path / "resumed" / part)
        assert whole.keys() == resumed.keys()
        for key in whole:
            assert torch.equal(whole[key], resumed[key]), f"{part}:{key} differs after resume"


def test_non_finite_reward_stops_naming_quantity_step_and_checkpoint(tmp_path, monkeypatch, toy_world):
    calls = {"n": 0}

    def sometimes_nan(prompts, responses):
        calls["n"] += 1
        return [float("nan") if calls["n"] >= 3 else 0.5] * len(responses)  # call 1 is the probe

    registry = plugins.default().registry
    monkeypatch.setitem(registry.reward_functions, "nan-after-one", RewardFunction("nan-after-one", "", sometimes_nan))
    with pytest.raises(TrainingError, match=r"reward nan-after-one returned nan for row 1 of 16 \(prompt .*\) while "
                                            r"training at iteration 2 \(last good checkpoint: .*step-000001\)"):
        aligner.run("ppo", reward="nan-after-one", save_every=1, output_dir=str(tmp_path / "run"), verbose=False,
                    **FAST)
    partial = next(tmp_path.glob(".run.partial-*"))
    assert (partial / "checkpoints" / "step-000001" / "state.json").exists()


def test_reward_model_from_another_base_is_refused(tmp_path, capsys, toy_world):
    from aligner.reward import model as reward_model

    base, tok = tiny_llama()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    rows = [json.loads(line) for line in toy_world.train_path.read_text().splitlines()[:40]]
    rm, metrics = reward_model.train_reward_model(model, tok, rows, steps=1, batch_size=4, learning_rate=1e-3,
                                                  max_length=32, heldout_fraction=0.2, seed=0,
                                                  device=torch.device("cpu"), log_metrics=lambda *a: None)
    reward_model.save_reward_model(model, rm, tmp_path / "other_rm", metrics)
    code = main(["run", "ppo", "--reward-model", str(tmp_path / "other_rm"), "--output-dir", str(tmp_path / "o"),
                 "--max-steps", "1", "--eval-prompts", "4"])
    assert code == 2
    assert "trained on different base weights" in capsys.readouterr().err
    assert main(["run", "ppo", "--reward-model", str(tmp_path / "nothing"), "--output-dir", str(tmp_path / "o")]) == 2
    assert "not a reward model directory" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--critic", "triple"], "--critic: invalid choice: 'triple'"),
])
def test_bad_ppo_flags_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "ppo", *argv])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--batch-size", "5"], "--batch-size 5 must divide the rollout of --prompts-per-step x --samples-per-prompt = 64"),
    (["--reward", "gold", "--reward-model", "x"], "--reward-model is only used with --reward model"),
    (["--lam", "1.5"], "--gamma and --lam must be in [0, 1]"),
])
def test_inconsistent_ppo_settings_exit_2(capsys, argv, message):
    assert main(["run", "ppo", *argv]) == 2
    assert message in capsys.readouterr().err


def test_unknown_reward_function_is_refused_before_training(tmp_path, capsys, toy_world):
    assert main(["run", "ppo", "--reward", "sentiment9000", "--output-dir", str(tmp_path / "o"),
                 "--eval-prompts", "4"]) == 2
    assert "--reward sentiment9000: unknown reward; give a registered name (answer-match, vader)" in \
        capsys.readouterr().err


def test_resume_from_nowhere_is_refused(tmp_path, capsys, toy_world):
    assert main(["run", "ppo", "--reward", "gold", "--resume", str(tmp_path), "--output-dir", str(tmp_path / "o"),
                 "--eval-prompts", "4"]) == 2
    assert "no checkpoint there" in capsys.readouterr().err


def test_ppo_setting_bounds_name_the_flag(capsys):
    assert main(["run", "ppo", "--cliprange", "-0.1"]) == 2
    assert "--cliprange must be >= 0, got -0.1" in capsys.readouterr().err
    assert main(["run", "ppo", "--epochs", "0"]) == 2
    assert "--epochs must be > 0, got 0" in capsys.readouterr().err


def test_conversational_pairs_train_a_reward_model(toy_world):
    """Chat-format pairs go through the tokenizer's chat template, for the reward model and PPO prompts alike."""
    from aligner.modeling import base as models
    from aligner.reward import model as reward_model

    base, tok = models.load_base("aligner-toy", models.placement("cpu"))
    tok.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    rows = [json.loads(line) for line in toy_world.train_path.read_text().splitlines()[:40]]
    chat = [{"prompt": [{"role": "user", "content": r["prompt"]}],
             "chosen": [{"role": "assistant", "content": r["chosen"].strip()}],
             "rejected": [{"role": "assistant", "content": r["rejected"].strip()}]} for r in rows]
    from aligner.data.encoding import encode_pairs

    pairs = encode_pairs(tok, chat[:1], 48, "cpu")
    assert tok.decode(pairs.chosen.input_ids[0][pairs.chosen.attention_mask[0].bool()]).split() == \
        (rows[0]["prompt"] + rows[0]["chosen"]).split()
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    rm, metrics = reward_model.train_reward_model(model, tok, chat, steps=2, batch_size=8, learning_rate=1e-3,
                                                  max_length=48, heldout_fraction=0.2, seed=0,
                                                  device=torch.device("cpu"), log_metrics=lambda *a: None)
    assert 0 <= metrics["reward_model_accuracy"] <= 1


def test_static_kv_cache_samples_the_same_rollout_as_the_dynamic_one():
    """--generation-cache static changes how the KV cache is held, not what is sampled (left padding included)."""
    from aligner.modeling.sampling import sample

    base, tok = tiny_llama()
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear"))
    prompts = ["the movie was", "a very", "this film is not"]
    rollouts = []
    for cache in ("dynamic", "static"):
        torch.manual_seed(3)
        rollouts.append(sample(model, tok, prompts, max_new_tokens=10, temperature=1.0, max_prompt_tokens=32,
                               cache=cache))
    dynamic, static = rollouts
    assert dynamic.input_ids.shape == (3, dynamic.prompt_length + 10)
    assert torch.equal(dynamic.input_ids, static.input_ids) and dynamic.responses == static.responses
    assert torch.equal(dynamic.response_mask, static.response_mask)
