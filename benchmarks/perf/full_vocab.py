"""The log-prob, critic and reward-model forwards as aligner computed them before they were made lean, for the
perf suite's before/after: every position's logits over the whole vocabulary, a float32 log-softmax over all of
them, the entropy differentiated whether or not a loss uses it, every layer's hidden states kept to read the last
one, a KV cache built by each training forward, and the LM head run for the critic and the reward model too."""

from __future__ import annotations

import torch

from aligner.modeling.logprobs import ResponseForward, position_ids


def response_forward(model, input_ids, attention_mask, prompt_length, temperature=1.0, hidden=False, entropy=None,
                     logprobs=True) -> ResponseForward:
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=hidden)
    logits = out.logits[:, prompt_length - 1:-1].float() / temperature
    targets = input_ids[:, prompt_length:]
    logp = torch.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    all_logp = torch.log_softmax(logits.float(), dim=-1)
    ent = -(all_logp.exp() * all_logp).sum(dim=-1)
    states = out.hidden_states[-1][:, prompt_length - 1:-1] if hidden else None
    return ResponseForward(picked, ent, states)


def sequence_scores(model, head, input_ids, attention_mask):
    from aligner.modeling.heads import last_token_index

    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=True)
    hidden = out.hidden_states[-1]
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return head(hidden[rows, last_token_index(attention_mask)])


def install() -> None:
    """Puts these in place of the lean routines wherever aligner and the PPO plugin call them."""
    import aligner.modeling.logprobs
    import aligner.online.rollout
    import aligner.online.update
    import aligner.reward.model
    import aligner_ppo.critic

    for module in (aligner.modeling.logprobs, aligner.online.rollout, aligner.online.update, aligner_ppo.critic):
        module.response_forward = response_forward
    aligner.reward.model.sequence_scores = sequence_scores
