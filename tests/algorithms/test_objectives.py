"""GRPO, RLOO, REINFORCE++, IPO, SimPO and KTO on the toy world: each moves its objective the right way, the online
ones sample G distinct continuations per prompt and hold one base and no critic."""

from __future__ import annotations

import gc
import json

import pytest
import torch

import aligner
from aligner.online import engine

from helpers import base_weight_storages

ONLINE = dict(reward="gold", max_steps=20, prompts_per_step=8, samples_per_prompt=4, batch_size=16,
              learning_rate=3e-3, eval_prompts=128, eval_max_new_tokens=12, response_length=12, missing_eos_penalty=0.0)
"""Sized so the gold reward's rise clears the noise of 128 held-out prompts on every known toy-world build. No
missing-EOS penalty: the training reward is then the judge itself, so a method cannot raise its training score by
shortening responses while the judge's score falls (REINFORCE++ did so with the penalty on one toy-world build)."""


def rows(run_dir, key):
    return [r[key] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if key in r]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce-pp"])
def test_online_critic_free_methods_raise_the_reward_with_one_base_and_no_critic(tmp_path, toy_world, monkeypatch,
                                                                                 name):
    observed = {}
    original = engine.update

    def spy(model, *args, **kwargs):
        observed.setdefault("storages", base_weight_storages())
        observed.setdefault("heads", [m for m in model.modules() if type(m).__name__ == "ScalarHead"])
        observed.setdefault("adapters", sorted(model.peft_config))
        return original(model, *args, **kwargs)

    monkeypatch.setattr(engine, "update", spy)
    summary = aligner.run(name, output_dir=str(tmp_path / "run"), **ONLINE)
    from aligner.modeling import base as models

    base, _ = models.load_base("aligner-toy", models.placement("cpu"))
    expected: dict = {}
    for p in base.parameters():
        if p.dim() == 2:
            expected[tuple(p.shape)] = expected.get(tuple(p.shape), 0) + 1
    del base, p
    gc.collect()
    for shape, n in expected.items():
        assert observed["storages"][shape] == n, f"{name} {shape}: one copy of the base expected"
    assert observed["heads"] == [] and observed["adapters"] == ["default"], "no value head, no critic adapter"
    assert not (tmp_path / "run" / "critic").exists()
    # The training reward is the judge itself (`reward="gold"`); one iteration's score averages 32 samples and
    # moves by about 0.07 between iterations, so the rise is checked on the 128 held-out prompts instead.
    assert len(rows(tmp_path / "run", "objective/scores")) == ONLINE["max_steps"]
    assert summary["gold_reward_after"] > summary["gold_reward_before"], (
        f"{name}: gold {summary['gold_reward_before']:.3f} -> {summary['gold_reward_after']:.3f}")
    assert summary["generated_tokens"] > 0 and summary["trained_tokens"] >= summary["generated_tokens"]


@pytest.mark.slow
def test_grpo_samples_g_distinct_continuations_per_prompt(toy_world):
    from peft import get_peft_model

    from aligner.modeling import base as models
    from aligner.online.settings import OnlineSettings

    base, tok = models.load_base("aligner-toy", models.placement("cpu"))
    model = get_peft_model(base, models.lora_config(OnlineSettings()))
    prompts = ["the film was", "i thought the acting", "this movie"]
    cfg = OnlineSettings(samples_per_prompt=4, prompts_per_step=3, batch_size=4, response_length=12)
    torch.manual_seed(0)
    from aligner.online.rollout import generate, score

    samples = generate(model, tok, prompts, cfg)
    rollout = score(model, None, samples, {}, lambda s, c: torch.zeros(len(s.prompts)), cfg, 1, None)
    assert rollout.groups.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
    assert rollout.samples.prompts == [p for p in prompts for _ in range(4)]
    for g in range(3):
        responses = rollout.samples.responses[4 * g:4 * g + 4]
        assert len(set(responses)) >= 3, f"prompt {g}: {responses}"


OFFLINE = dict(max_steps=30, batch_size=16, learning_rate=2e-3, eval_prompts=16, eval_max_new_tokens=8)


@pytest.mark.slow
@pytest.mark.parametrize("name, metric, extra", [("simpo", "rewards/margins", {}), ("ipo", "rewards/margins", {}),
                                                 ("kto", "rewards/signed", {"max_steps": 60}),
                                                 ("orpo", "rewards/margins", {}),
                                                 ("orpo", "rewards/margins", {"implementation": "trl"})])
def test_offline_variants_move_their_objective(tmp_path, toy_world, name, metric, extra):
    """Each raises the policy's preference for chosen over rejected answers on a fixed set of training pairs,
    against the reference (the per-batch margins it logs are too noisy over a few dozen steps to show it), on
    aligner's engine and, for ORPO, through TRL's trainer too. KTO sees each response alone, not beside its pair,
    and gets twice the steps (after 30 its margin moves by less than 0.01 on some processors' toy-world builds)."""
    from peft import PeftModel

    from aligner.data.encoding import encode_pairs
    from aligner.modeling import base as models
    from aligner.modeling.logprobs import sequence_logprobs

    summary = aligner.run(name, output_dir=str(tmp_path / "run"), **{**OFFLINE, **extra})
    values = rows(tmp_path / "run", metric)
    assert len(values) >= 20, f"{name} logged {len(values)} {metric}"
    assert summary["kl"] > 0
    base, tok = models.load_base("aligner-toy", models.placement("cpu"))
    policy = PeftModel.from_pretrained(base, str(tmp_path / "run" / "adapter"))
    pairs = encode_pairs(tok, [json.loads(line) for line in toy_world.train_path.read_text().splitlines()[:128]], 64,
                         "cpu")

    def margin() -> float:
        return (sequence_logprobs(policy, pairs.chosen, average=True)
                - sequence_logprobs(policy, pairs.rejected, average=True)).mean().item()

    with torch.no_grad():
        trained = margin()
        with policy.disable_adapter():
            reference = margin()
    assert trained > reference + 0.05, f"{name}: margin {reference:.3f} -> {trained:.3f}"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["grpo", "rloo", "reinforce-pp"])
def test_a_resumed_critic_free_run_trains_what_the_uninterrupted_one_trains(tmp_path, toy_world, name):
    from safetensors.torch import load_file

    from aligner.errors import CheckpointError

    small = dict(ONLINE, max_steps=4, save_every=2, eval_prompts=4, eval_max_new_tokens=4)
    aligner.run(name, output_dir=str(tmp_path / "whole"), **small)
    aligner.run(name, output_dir=str(tmp_path / "half"), **{**small, "max_steps": 2})
    summary = aligner.run(name, output_dir=str(tmp_path / "resumed"), resume=str(tmp_path / "half"), **small)
    assert summary["resumed_from_step"] == 2
    whole = load_file(str(tmp_path / "whole" / "adapter" / "adapter_model.safetensors"))
    resumed = load_file(str(tmp_path / "resumed" / "adapter" / "adapter_model.safetensors"))
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    with pytest.raises(CheckpointError, match="learning_rate: 0.003 -> 0.001"):
        aligner.run(name, output_dir=str(tmp_path / "changed"), resume=str(tmp_path / "half"),
                    **{**small, "learning_rate": 1e-3})
    other = "rloo" if name == "grpo" else "grpo"
    with pytest.raises(CheckpointError, match=f"saved with algorithm {name}, not {other}"):
        aligner.run(other, output_dir=str(tmp_path / "other"), resume=str(tmp_path / "half"), **small)
