"""The critic-free methods' arithmetic and the pair tools, against hand-computed cases and slow reference loops."""

from __future__ import annotations

import math
import statistics

import pytest
import torch

from aligner.api import OnlineRollout, aggregate, kl_estimate, masked_whiten, policy_loss
from aligner.data.encoding import encode_pairs
from aligner.modeling.logprobs import sequence_logprobs
from aligner_grpo.advantages import group_advantages
from aligner_reinforce_pp.advantages import token_returns
from aligner_rloo.advantages import leave_one_out

from helpers import completion_logp, randomize_lora, tiny_llama


def test_group_advantages_by_hand_with_ties_and_a_group_of_one():
    scores = torch.tensor([1.0, 2.0, 3.0, 5.0, 7.0, 7.0])
    groups = torch.tensor([0, 0, 0, 1, 2, 2])
    # group 0: mean 2, unbiased std 1; group 1 alone; group 2 tied
    expected = torch.tensor([-1 / (1 + 1e-4), 0.0, 1 / (1 + 1e-4), 0.0, 0.0, 0.0])
    torch.testing.assert_close(group_advantages(scores, groups, scale=True), expected)
    torch.testing.assert_close(group_advantages(scores, groups, scale=False), torch.tensor([-1.0, 0, 1, 0, 0, 0]))


def test_group_advantages_match_a_slow_loop():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randn(40, generator=gen)
    groups = torch.randint(0, 9, (40,), generator=gen)
    got = group_advantages(scores, groups, scale=True)
    for i in range(40):
        members = [scores[j].item() for j in range(40) if groups[j] == groups[i]]
        mean = statistics.fmean(members)
        std = statistics.stdev(members) if len(members) > 1 else 0.0
        assert math.isclose(got[i].item(), (scores[i].item() - mean) / (std + 1e-4), rel_tol=1e-4, abs_tol=1e-5)


def test_leave_one_out_by_hand_with_k2_and_a_group_of_one():
    rewards = torch.tensor([1.0, 3.0, 4.0, 0.5, 1.5, 2.5])
    groups = torch.tensor([0, 0, 1, 2, 2, 2])
    # k=2: each against the other; alone: 0; k=3: 0.5 - (1.5+2.5)/2, 1.5 - (0.5+2.5)/2, 2.5 - (0.5+1.5)/2
    torch.testing.assert_close(leave_one_out(rewards, groups), torch.tensor([-2.0, 2.0, 0.0, -1.5, 0.0, 1.5]))


def test_leave_one_out_matches_a_slow_loop():
    gen = torch.Generator().manual_seed(1)
    rewards = torch.randn(30, generator=gen)
    groups = torch.randint(0, 7, (30,), generator=gen)
    got = leave_one_out(rewards, groups)
    for i in range(30):
        others = [rewards[j].item() for j in range(30) if groups[j] == groups[i] and j != i]
        expected = rewards[i].item() - statistics.fmean(others) if others else 0.0
        assert math.isclose(got[i].item(), expected, abs_tol=1e-5)


def test_rloo_folds_the_sequence_kl_into_the_reward():
    from types import SimpleNamespace

    from aligner_rloo.advantages import advantages

    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    old = torch.tensor([[-1.0, -1.0, 0.0], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, 0.0], [-1.0, -2.0, -1.0]])
    scores = torch.tensor([1.0, 1.0])
    rollout = OnlineRollout(None, torch.tensor([0, 0]), mask, old, ref, raw_scores=scores, scores=scores)
    # sequence KL 0.5 and 1.0; with beta 0.2 the rewards are 0.9 and 0.8; leave-one-out: +0.1 and -0.1
    got = advantages(rollout, SimpleNamespace(kl_coef=0.2))
    torch.testing.assert_close(got, torch.tensor([[0.1, 0.1, 0.0], [-0.1, -0.1, -0.1]]))


def test_reinforce_pp_returns_by_hand():
    scores = torch.tensor([1.0])
    log_ratio = torch.tensor([[0.1, 0.2, 0.3]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    # rewards: -0.05, -0.1 + 1 (last real token), padding 0; returns to go: 0.85, 0.9, 0
    torch.testing.assert_close(token_returns(scores, log_ratio, mask, 0.5), torch.tensor([[0.85, 0.9, 0.0]]))


def test_whiten_is_over_every_token_of_the_batch():
    values = torch.tensor([[1.0, 2.0, 9.0], [3.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    got = masked_whiten(values, mask)
    kept = [1.0, 2.0, 3.0]  # mean 2, unbiased std 1
    torch.testing.assert_close(got, torch.tensor([[-1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]), atol=1e-6, rtol=0)
    assert statistics.stdev(kept) == 1.0


def test_k3_and_the_clipped_loss_by_hand():
    logp, ref = torch.tensor([[math.log(0.5)]]), torch.tensor([[math.log(0.25)]])
    one = torch.ones(1, 1)
    assert math.isclose(kl_estimate(logp, ref, one, "k3").item(), 0.5 - 1 - math.log(0.5), rel_tol=1e-6)
    assert math.isclose(kl_estimate(logp, ref, one, "k1").item(), math.log(2), rel_tol=1e-6)
    logprobs = torch.tensor([[math.log(1.5), math.log(0.5)]])  # ratios 1.5 and 0.5 against old log-probs of 0
    old = torch.zeros(1, 2)
    advantages = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2)
    out = policy_loss(logprobs, old, advantages, mask, cliprange=0.2)
    # token 1: max(-1.5, -1.2) = -1.2; token 2: max(0.5, 0.8) = 0.8; both take the clipped term
    assert out.loss.item() == pytest.approx(-0.2) and out.clipfrac.item() == 1.0


def test_clipfrac_counts_only_the_tokens_whose_gradient_the_clip_cuts():
    """Four tokens outside the clip range: ratio 1.5 with advantage +1 and ratio 0.5 with advantage -1 take the
    clipped (constant) term; ratio 1.5 with advantage -1 and ratio 0.5 with advantage +1 take the unclipped term,
    whose gradient flows, and are not counted."""
    logprobs = torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.5), math.log(0.5)]], requires_grad=True)
    advantages = torch.tensor([[1.0, -1.0, -1.0, 1.0]])
    out = policy_loss(logprobs, torch.zeros(1, 4), advantages, torch.ones(1, 4), cliprange=0.2)
    assert out.clipfrac.item() == 0.5
    out.loss.backward()
    cut = logprobs.grad[0] == 0
    assert cut.tolist() == [True, True, False, False]


def test_token_and_sequence_aggregation_differ_as_documented():
    values = torch.tensor([[1.0, 1.0, 1.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate("token")(values, mask).item() == pytest.approx(7 / 4)
    assert aggregate("sequence")(values, mask).item() == pytest.approx((1 + 4) / 2)


def test_sequence_logprobs_match_the_slow_unpadded_reference():
    from peft import LoraConfig, get_peft_model

    model, tok = tiny_llama()
    model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    randomize_lora(model, scale=0.3)
    rows = [{"prompt": "the film was", "chosen": " very good .", "rejected": " bad"},
            {"prompt": "a", "chosen": " great film , not bad at all .", "rejected": " awful ."}]
    pairs = encode_pairs(tok, rows, max_length=64, device="cpu")
    with torch.no_grad():
        got = sequence_logprobs(model, pairs.chosen)
        average = sequence_logprobs(model, pairs.rejected, average=True)
        for i, row in enumerate(rows):
            assert math.isclose(got[i].item(), completion_logp(model, tok, row["prompt"], row["chosen"]).item(),
                                rel_tol=1e-5)
            n = len(tok(row["rejected"], add_special_tokens=False)["input_ids"]) + 1  # + EOS
            expected = completion_logp(model, tok, row["prompt"], row["rejected"]).item() / n
            assert math.isclose(average[i].item(), expected, rel_tol=1e-5)
    assert pairs.chosen.input_ids[0, 0] == tok.bos_token_id and (pairs.chosen.response_mask.sum(1) > 0).all()


def test_own_orpo_term_matches_trls_by_hand_and_on_random_log_probs():
    from types import SimpleNamespace

    from trl.experimental.orpo import ORPOTrainer

    from aligner_orpo.loss import log1mexp, odds_ratio_term

    # p = 0.5 and 0.25: odds 1 and 1/3, log odds ratio log 3
    chosen, rejected = torch.tensor([math.log(0.5)]), torch.tensor([math.log(0.25)])
    assert math.isclose(odds_ratio_term(chosen, rejected).item(), math.log(1 / (1 + 1 / 3)), rel_tol=1e-6)
    assert math.isclose(log1mexp(torch.tensor([-1e-3])).item(), math.log(1 - math.exp(-1e-3)), rel_tol=1e-6)
    gen = torch.Generator().manual_seed(0)
    chosen, rejected = -torch.rand(50, generator=gen) * 5, -torch.rand(50, generator=gen) * 5
    stub = SimpleNamespace(beta=0.3, accelerator=SimpleNamespace(device="cpu"))
    losses = ORPOTrainer.odds_ratio_loss(stub, chosen, rejected)[0]
    torch.testing.assert_close(0.3 * odds_ratio_term(chosen, rejected), losses)
