"""KTO's training on desirable and undesirable examples (a preference pair gives one of each): aligner's offline
engine (`--implementation aligner`), or TRL's KTOTrainer (`--implementation trl`)."""

from __future__ import annotations

import dataclasses

from aligner.api import PREFERENCE, interleave_unpaired, train_on_examples, train_with_trl, training_arguments
from aligner_kto.loss import kl_estimate, kto_loss


def train(context):
    cfg = context.config
    examples = context.train_dataset
    if context.data_layout.kind == PREFERENCE:  # each pair: a desirable and an undesirable example
        examples = interleave_unpaired(examples)
    context = dataclasses.replace(context, train_dataset=examples)
    if cfg.implementation == "trl":
        import trl

        args = trl.KTOConfig(beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                             undesirable_weight=cfg.undesirable_weight, **training_arguments(context))
        return train_with_trl(trl.KTOTrainer, args, context)

    def loss(logps):
        kl = kl_estimate(logps.mismatched, logps.ref_mismatched)
        logratios = logps.logps - logps.ref_logps
        value = kto_loss(logratios, logps.desirable, kl, cfg.beta, cfg.desirable_weight, cfg.undesirable_weight)
        signed = cfg.beta * logratios.detach() * (2 * logps.desirable.float() - 1)  # positive when right
        return value, {"kl": kl.item(), "rewards/signed": signed.mean().item(),
                       "rewards/desirable_fraction": logps.desirable.float().mean().item()}

    return train_on_examples(context, loss, desc="kto")
