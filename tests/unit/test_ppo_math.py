"""PPO arithmetic against hand-computed values and against slow, literal reference loops."""

import math

import pytest
import torch

from aligner.api import masked_whiten, policy_loss
from aligner_ppo import advantages as ppo_advantages
from aligner_ppo import loss as ppo_loss


def random_batch(seed, batch=6, length=9):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).float()
    noise = lambda: torch.randn(batch, length, generator=gen)  # noqa: E731
    return mask, noise


def test_gae_hand_computed():
    rewards = torch.tensor([[1.0, 0.0, 2.0, 9.0]])
    values = torch.tensor([[0.5, 1.0, 0.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])  # the 9s are padding and must not matter
    adv, ret = ppo_advantages.gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[2.5, 1.0, 2.0, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[3.0, 2.0, 2.0, 0.0]]))
    adv, _ = ppo_advantages.gae(rewards, values, mask, gamma=0.5, lam=0.5)
    assert torch.allclose(adv, torch.tensor([[0.875, -0.5, 2.0, 0.0]]))


def slow_gae(rewards, values, mask, gamma, lam):
    adv = torch.zeros_like(rewards)
    for i in range(rewards.shape[0]):
        n = int(mask[i].sum())
        v = [values[i, t].item() for t in range(n)] + [0.0]
        deltas = [rewards[i, t].item() + gamma * v[t + 1] - v[t] for t in range(n)]
        for t in range(n):
            adv[i, t] = sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t))
    return adv


@pytest.mark.parametrize("seed, gamma, lam", [(0, 1.0, 0.95), (1, 0.99, 0.9), (2, 0.5, 1.0)])
def test_gae_matches_slow_reference(seed, gamma, lam):
    mask, noise = random_batch(seed)
    rewards, values = noise(), noise()
    adv, ret = ppo_advantages.gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, slow_gae(rewards, values, mask, gamma, lam), atol=1e-5)
    assert torch.allclose(ret, (adv + values) * mask, atol=1e-6)
    assert torch.all(adv[mask == 0] == 0)


def test_token_rewards_hand_computed():
    logprobs = torch.tensor([[-1.0, -2.0, 5.0]])
    ref = torch.tensor([[-1.5, -1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    rewards, kl = ppo_advantages.token_rewards(logprobs, ref, torch.tensor([3.0]), mask, kl_coef=0.1)
    assert torch.allclose(kl, torch.tensor([[0.5, -1.0, 0.0]]))
    assert torch.allclose(rewards, torch.tensor([[-0.05, 3.1, 0.0]]))
    _, k3 = ppo_advantages.token_rewards(logprobs, ref, torch.tensor([3.0]), mask, kl_coef=0.1, kl_estimator="k3")
    expected = [math.exp(-0.5) - 1 + 0.5, math.exp(1.0) - 1 - 1.0, 0.0]
    assert torch.allclose(k3, torch.tensor([expected]))
    assert torch.all(k3 >= 0)


def test_policy_loss_hand_computed():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 1.5, 0.9]]))
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0]])
    out = policy_loss(new, old, adv, mask, cliprange=0.2)
    # token 1: ratio 1.5 clipped to 1.2 -> -1.2 (clipped); token 2: -adv*1.5 = 1.5 (unclipped wins);
    # token 3: ratio 0.9 inside the range -> -1.8
    assert math.isclose(out.loss.item(), (-1.2 + 1.5 - 1.8) / 3, rel_tol=1e-6)
    assert math.isclose(out.clipfrac.item(), 1 / 3, rel_tol=1e-6)
    assert math.isclose(out.approxkl.item(), 0.5 * (2 * math.log(1.5) ** 2 + math.log(0.9) ** 2) / 3, rel_tol=1e-6)


def test_policy_and_value_loss_match_slow_reference_and_ignore_padding():
    mask, noise = random_batch(3)
    new, old, adv, values, old_values, returns = (noise() * 0.3 for _ in range(6))
    out = policy_loss(new, old, adv, mask, 0.2)
    vout = ppo_loss.value_loss(values, old_values, returns, mask, 0.2)
    pg, vf, count = 0.0, 0.0, 0
    for i, t in mask.nonzero().tolist():
        r = math.exp(new[i, t] - old[i, t])
        pg += max(-adv[i, t].item() * r, -adv[i, t].item() * min(max(r, 0.8), 1.2))
        vc = old_values[i, t].item() + min(max(values[i, t].item() - old_values[i, t].item(), -0.2), 0.2)
        vf += 0.5 * max((values[i, t].item() - returns[i, t].item()) ** 2, (vc - returns[i, t].item()) ** 2)
        count += 1
    assert math.isclose(out.loss.item(), pg / count, rel_tol=1e-5)
    assert math.isclose(vout.loss.item(), vf / count, rel_tol=1e-5)
    garbage = torch.where(mask.bool(), new, torch.full_like(new, 1e6))
    assert torch.isclose(policy_loss(garbage, old, adv, mask, 0.2).loss, out.loss)


def test_value_loss_hand_computed():
    out = ppo_loss.value_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.05]]),
                        torch.tensor([[1.0, 1.0]]), cliprange_value=0.5)
    # token 1: unclipped error (2-1)^2 = 1, clipped 0.5 -> (0.5-1)^2 = 0.25: max 1; token 2: 0.0025 both
    assert math.isclose(out.loss.item(), 0.5 * (1 + 0.0025) / 2, rel_tol=1e-6)
    assert out.clipfrac.item() == 0.0


def test_whitening_uses_only_masked_tokens():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    white = masked_whiten(values, mask)
    assert torch.allclose(white, torch.tensor([[-1.0, 0.0, 1.0, 0.0]]), atol=1e-4)
    kept = masked_whiten(values, mask, shift_mean=False)
    assert torch.allclose(kept[0, :3], torch.tensor([1.0, 2.0, 3.0]), atol=1e-4)


def test_entropy_and_explained_variance():
    uniform = torch.zeros(1, 1, 4)
    assert math.isclose(ppo_loss.entropy_from_logits(uniform).item(), math.log(4), rel_tol=1e-6)
    mask = torch.ones(1, 4)
    returns = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    assert ppo_loss.explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert ppo_loss.explained_variance(torch.full_like(returns, 2.5), returns, mask).item() == pytest.approx(0.0)


def test_kl_controllers():
    ctl = ppo_advantages.AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=12.0, n_samples=64)  # error clipped to +0.2
    assert math.isclose(ctl.value, 0.1 * (1 + 0.2 * 64 / 10000))
    ctl.update(current_kl=5.4, n_samples=100)  # error -0.1
    assert math.isclose(ctl.value, 0.1 * (1 + 0.2 * 64 / 10000) * (1 - 0.1 * 100 / 10000))
    fixed = ppo_advantages.FixedKLController(0.05)
    fixed.update(100.0, 64)
    assert fixed.value == 0.05


def test_running_moments_match_batch_statistics():
    gen = torch.Generator().manual_seed(0)
    chunks = [torch.randn(n, generator=gen) * 3 + 1 for n in (5, 17, 64)]
    moments = ppo_advantages.RunningMoments()
    for chunk in chunks:
        moments.update(chunk)
    everything = torch.cat(chunks).double()
    assert math.isclose(moments.mean, everything.mean().item(), rel_tol=1e-9)
    assert math.isclose(moments.std, everything.std(unbiased=False).item(), rel_tol=1e-9)


def test_running_moments_pool_every_process_scores(monkeypatch):
    """Two processes, simulated: each holds half of every rollout's scores; the all-reduce sums this process's
    statistics with the other's. Both end with the moments of all the scores, as one process holding them would."""
    import aligner_ppo.train as ppo_train

    gen = torch.Generator().manual_seed(1)
    rollouts = [(torch.randn(8, generator=gen) * 2 - 1, torch.randn(8, generator=gen) * 5 + 3) for _ in range(3)]
    other = {}

    def summed_with_other(metrics, summed=()):
        assert set(summed) == set(metrics)
        return {k: v + other[k] for k, v in metrics.items()}

    monkeypatch.setattr(ppo_train, "reduce_metrics", summed_with_other)
    pooled = ppo_advantages.RunningMoments()
    for mine, theirs in rollouts:
        t = theirs.double()
        other.update(n=t.numel(), sum=t.sum().item(), squares=(t * t).sum().item())
        pooled.combine(*ppo_train.pooled_moments(mine))
    alone = ppo_advantages.RunningMoments()
    for mine, theirs in rollouts:
        alone.update(torch.cat([mine, theirs]))
    assert math.isclose(pooled.mean, alone.mean, rel_tol=1e-12)
    assert math.isclose(pooled.std, alone.std, rel_tol=1e-9)
    assert pooled.count == alone.count == 48
    local = ppo_advantages.RunningMoments()
    for mine, _ in rollouts:
        local.update(mine)
    assert abs(local.mean - pooled.mean) > 0.5, "the halves differ, so pooling is what makes the moments agree"
