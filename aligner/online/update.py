"""The update of every online method: `epochs` passes of minibatch steps over one scored rollout, each minibatch in
`gradient_accumulation_steps` micro-batches, the clipped surrogate (plus the k3 KL to the reference where the
method puts it in the loss, minus the entropy bonus), and the critic's value loss when the method has one.

Gradient accumulation changes memory, not the gradient: each micro-batch's loss is weighted by its share of the
minibatch (its tokens' share under token aggregation, 1 / micro-batches under sequence aggregation), so the
accumulated gradient is the whole minibatch's to float rounding (tested)."""

from __future__ import annotations

import torch

from aligner.modeling.logprobs import response_forward
from aligner.online.quantities import aggregate, kl_estimate, policy_loss
from aligner.parallel import distributed
from aligner.training.guards import check_finite


def update(model, critic, params: list, optimizer, rollout, advantages, cfg, kl_in_loss: bool, generator,
           step: int, last_checkpoint) -> dict:
    """Returns the update's metrics, averaged over its micro-batches."""
    samples = rollout.samples
    n = samples.input_ids.shape[0]
    micro = cfg.batch_size // cfg.gradient_accumulation_steps
    names = ["loss/policy", "policy/entropy", "policy/approxkl", "policy/clipfrac"]
    names += ["loss/kl"] if kl_in_loss else []
    names += ["loss/value", "val/clipfrac"] if critic is not None else []
    stats: dict[str, list[float]] = {name: [] for name in names}
    entropy_mode = "loss" if cfg.entropy_coef > 0 else "metric"  # a metric only: no autograd graph through it
    agg = aggregate(cfg.loss_aggregation)
    stopped = False
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, cfg.batch_size):
            minibatch = order[start:start + cfg.batch_size]
            minibatch_tokens = rollout.mask[minibatch].sum()
            approxkl = []
            for micro_start in range(0, len(minibatch), micro):
                idx = minibatch[micro_start:micro_start + micro]
                mask = rollout.mask[idx]
                policy_share, value_share = micro_shares(mask, minibatch_tokens, cfg)
                args = (samples.input_ids[idx], samples.attention_mask[idx], samples.prompt_length, cfg.temperature)
                values = None
                if critic is None or critic.separate:
                    # A separate critic shares no trainable weight with the policy: its graph is built and freed
                    # after the policy's, so their activations are never held together (same gradients).
                    out = response_forward(model, *args, entropy=entropy_mode)
                else:
                    out, values = critic.policy_and_values(model, *args, entropy=entropy_mode)
                pl = policy_loss(out.logprobs, rollout.old_logprobs[idx], advantages.advantages[idx], mask,
                                 cfg.cliprange, cfg.loss_aggregation)
                entropy = agg(out.entropy, mask)
                record = {"loss/policy": pl.loss, "policy/entropy": entropy, "policy/approxkl": pl.approxkl,
                          "policy/clipfrac": pl.clipfrac}
                loss, value_term = pl.loss, None
                if values is not None:  # a critic in the same pass: one loss, one backward
                    vl = critic.value_loss(values, rollout.values[idx], advantages.returns[idx], mask)
                    value_term = critic.vf_coef * vl.loss
                    loss = loss + value_term
                    record.update({"loss/value": vl.loss, "val/clipfrac": vl.clipfrac})
                loss = loss - cfg.entropy_coef * entropy
                if kl_in_loss:
                    kl = agg(kl_estimate(out.logprobs, rollout.ref_logprobs[idx], mask, "k3"), mask)
                    loss = loss + cfg.kl_coef * kl
                    record["loss/kl"] = kl
                check_finite("loss", loss, step, last_checkpoint)
                if value_term is None or value_share == policy_share:
                    (loss * policy_share).backward()
                else:
                    ((loss - value_term) * policy_share + value_term * value_share).backward()
                if critic is not None and critic.separate:
                    del out
                    vl = critic.value_loss(critic.values(model, *args), rollout.values[idx], advantages.returns[idx],
                                           mask)
                    check_finite("loss", vl.loss, step, last_checkpoint)
                    (critic.vf_coef * vl.loss * value_share).backward()
                    record.update({"loss/value": vl.loss, "val/clipfrac": vl.clipfrac})
                for key, value in record.items():
                    stats[key].append(value.item())
                approxkl.append(pl.approxkl.item())
            distributed.average_gradients(params)
            distributed.clip_grad_norm_(params, cfg.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if cfg.approxkl_stop is not None:
                mean_approxkl = distributed.reduce_metrics({"kl": sum(approxkl) / len(approxkl)})["kl"]
                if mean_approxkl > cfg.approxkl_stop:
                    stopped = True
                    break
        if stopped:
            break
    return {**{k: sum(v) / len(v) for k, v in stats.items()}, "policy/early_stopped": float(stopped)}


def micro_shares(mask, minibatch_tokens, cfg) -> tuple:
    """The weights of one micro-batch's mean losses in its minibatch's, (policy terms, value loss): its share of the
    response tokens where every token weighs the same (token aggregation; the critic's masked mean always),
    1 / micro-batches where every response does (sequence aggregation; micro-batches hold equally many responses).
    Exactly 1 without accumulation."""
    if cfg.gradient_accumulation_steps == 1:
        return 1.0, 1.0
    tokens = mask.sum() / minibatch_tokens
    return (tokens if cfg.loss_aggregation == "token" else 1.0 / cfg.gradient_accumulation_steps), tokens
