"""What an offline loss reads: log p(response | prompt) of each batch row under the policy (with gradients) and
under the reference (the base with the adapter disabled, without gradients, or read from a table computed once
before training), with the response token counts that length-normalised losses divide by.

Chosen and rejected go through the model together, one batch of twice the rows, as TRL's trainers run them. The
reference pass runs first and keeps nothing, so the step's peak is the policy's pass, as for a method without a
reference; the LM head runs on response tokens only, a chunk at a time
(`aligner.modeling.logprobs.sequence_logprobs`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aligner.data.batches import take
from aligner.data.encoding import Sequences, concatenate, encode_pairs, encode_sequences
from aligner.modeling.base import reference as adapters_off
from aligner.modeling.logprobs import masked_token_logprobs, sequence_logprobs


@dataclass
class PairLogps:
    """One batch of preference pairs: summed log-probs of each response, (batch,) each, float32."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    chosen_tokens: torch.Tensor     # response tokens of each chosen response, EOS included (float)
    rejected_tokens: torch.Tensor
    ref_chosen: torch.Tensor | None  # None for methods without a reference
    ref_rejected: torch.Tensor | None
    chosen_sequence: torch.Tensor | None = None  # log p of every chosen token after the first, prompt included
    chosen_sequence_tokens: torch.Tensor | None = None

    @property
    def chosen_mean(self) -> torch.Tensor:
        """Per-token average log-prob of each chosen response (length-normalised methods: SimPO, ORPO)."""
        return self.chosen / self.chosen_tokens

    @property
    def rejected_mean(self) -> torch.Tensor:
        return self.rejected / self.rejected_tokens

    @property
    def chosen_logratios(self) -> torch.Tensor:
        """log pi(chosen) - log pi_ref(chosen), summed over the response."""
        return self.chosen - self.ref_chosen

    @property
    def rejected_logratios(self) -> torch.Tensor:
        return self.rejected - self.ref_rejected

    def reward_metrics(self, beta: float) -> dict:
        """TRL's implicit-reward metrics (beta times each summed log-ratio), under TRL's names, so a method's
        metrics read the same on either implementation."""
        chosen, rejected = beta * self.chosen_logratios.detach(), beta * self.rejected_logratios.detach()
        return {"rewards/chosen": chosen.mean().item(), "rewards/rejected": rejected.mean().item(),
                "rewards/margins": (chosen - rejected).mean().item(),
                "rewards/accuracies": (chosen > rejected).float().mean().item()}


@dataclass
class ExampleLogps:
    """One batch of unpaired examples (KTO): summed log-probs of each completion, and those of mismatched
    completions (each prompt with the previous row's completion, cyclically), whose policy-reference gap estimates
    the KL term; the mismatched ones carry no gradient."""

    logps: torch.Tensor
    ref_logps: torch.Tensor
    desirable: torch.Tensor         # (batch,) bool
    mismatched: torch.Tensor
    ref_mismatched: torch.Tensor


def response_tokens(sequences: Sequences) -> torch.Tensor:
    return sequences.response_mask.sum(1).clamp(min=1).float()


def _with_prompt(model, sequences: Sequences) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(response log-prob sums, whole-sequence log-prob sums, whole-sequence token counts) from one pass: the
    whole sequence is every attended token after the first, prompt included (ORPO's NLL term as TRL computes it)."""
    logp, rows, kept = masked_token_logprobs(model, sequences.input_ids, sequences.attention_mask,
                                             sequences.attention_mask)
    zeros = torch.zeros(kept.shape[0], device=logp.device, dtype=logp.dtype)
    response = sequences.response_mask[:, 1:][kept].to(logp.dtype)
    return (zeros.index_add(0, rows, logp * response), zeros.index_add(0, rows, logp),
            kept.sum(1).clamp(min=1).float())


def _reference(model, sequences: Sequences) -> torch.Tensor:
    with torch.no_grad(), adapters_off(model):
        return sequence_logprobs(model, sequences)


class ReferenceTable:
    """The reference's log-probs of every training pair, computed before training in batches (TRL's
    `precompute_ref_log_probs`): a step then runs no reference pass, at the cost of one pass over the data first."""

    def __init__(self, model, tokenizer, rows, max_length: int, device, batch_size: int):
        from tqdm.auto import tqdm

        table = torch.empty(len(rows), 2)
        for start in tqdm(range(0, len(rows), batch_size), desc="reference log-probs", dynamic_ncols=True):
            indices = range(start, min(start + batch_size, len(rows)))
            pairs = encode_pairs(tokenizer, take(rows, indices), max_length, device)
            both = _reference(model, concatenate(pairs.chosen, pairs.rejected, tokenizer.pad_token_id))
            table[start:start + len(indices)] = both.float().cpu().view(2, -1).T
        self.table = table

    def __call__(self, indices: list[int], device) -> tuple[torch.Tensor, torch.Tensor]:
        rows = self.table[indices].to(device)
        return rows[:, 0], rows[:, 1]


def pair_logps(model, tokenizer, rows: list[dict], indices: list[int], max_length: int, device,
               reference: bool | ReferenceTable, chosen_sequence: bool = False) -> tuple[PairLogps, int]:
    """The batch's `PairLogps` and its token count (chosen and rejected sequences, prompt included);
    `chosen_sequence` also fills the chosen responses' whole-sequence log-probs, from the same pass."""
    pairs = encode_pairs(tokenizer, rows, max_length, device)
    both = concatenate(pairs.chosen, pairs.rejected, tokenizer.pad_token_id)
    ref_chosen = ref_rejected = None
    if isinstance(reference, ReferenceTable):
        ref_chosen, ref_rejected = reference(indices, device)
    elif reference:
        ref_chosen, ref_rejected = _reference(model, both).chunk(2)
    whole = whole_tokens = None
    if chosen_sequence:
        responses, whole, whole_tokens = _with_prompt(model, both)
        whole, whole_tokens = whole[:len(rows)], whole_tokens[:len(rows)]
    else:
        responses = sequence_logprobs(model, both)
    chosen, rejected = responses.chunk(2)
    tokens = int(pairs.chosen.attention_mask.sum()) + int(pairs.rejected.attention_mask.sum())
    return PairLogps(chosen, rejected, response_tokens(pairs.chosen), response_tokens(pairs.rejected), ref_chosen,
                     ref_rejected, whole, whole_tokens), tokens


def example_logps(model, tokenizer, rows: list[dict], max_length: int, device) -> tuple[ExampleLogps, int]:
    """The batch's `ExampleLogps` (rows: prompt, completion, label) and its token count."""
    prompts = [r["prompt"] for r in rows]
    completions = [r["completion"] for r in rows]
    matched = encode_sequences(tokenizer, prompts, completions, max_length, device)
    shifted = encode_sequences(tokenizer, prompts, completions[-1:] + completions[:-1], max_length, device)
    ref_logps, ref_mismatched = _reference(model, concatenate(matched, shifted, tokenizer.pad_token_id)).chunk(2)
    with torch.no_grad():
        mismatched = sequence_logprobs(model, shifted)
    logps = sequence_logprobs(model, matched)
    desirable = torch.tensor([bool(r["label"]) for r in rows], device=logps.device)
    tokens = int(matched.attention_mask.sum())
    return ExampleLogps(logps, ref_logps, desirable, mismatched, ref_mismatched), tokens
