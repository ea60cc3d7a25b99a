"""The update of every online method: `epochs` passes of minibatch steps over one scored rollout, each minibatch in
`gradient_accumulation_steps` micro-batches, the clipped surrogate (plus the k3 KL to the reference where the
method puts it in the loss, minus the entropy bonus), and the critic's value loss when the method has one."""

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
            approxkl = []
            for micro_start in range(0, len(minibatch), micro):
                idx = minibatch[micro_start:micro_start + micro]
                mask = rollout.mask[idx]
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
                loss = pl.loss
                if values is not None:  # a critic in the same pass: one loss, one backward
                    vl = critic.value_loss(values, rollout.values[idx], advantages.returns[idx], mask)
                    loss = loss + critic.vf_coef * vl.loss
                    record.update({"loss/value": vl.loss, "val/clipfrac": vl.clipfrac})
                loss = loss - cfg.entropy_coef * entropy
                if kl_in_loss:
                    kl = agg(kl_estimate(out.logprobs, rollout.ref_logprobs[idx], mask, "k3"), mask)
                    loss = loss + cfg.kl_coef * kl
                    record["loss/kl"] = kl
                check_finite("loss", loss, step, last_checkpoint)
                (loss / cfg.gradient_accumulation_steps).backward()
                if critic is not None and critic.separate:
                    del out
                    vl = critic.value_loss(critic.values(model, *args), rollout.values[idx], advantages.returns[idx],
                                           mask)
                    check_finite("loss", vl.loss, step, last_checkpoint)
                    (critic.vf_coef * vl.loss / cfg.gradient_accumulation_steps).backward()
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
