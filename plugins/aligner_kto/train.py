"""KTO's training: TRL's KTOTrainer on desirable and undesirable examples (a preference pair gives one of each)."""

from __future__ import annotations

import dataclasses

import trl

from aligner.api import PREFERENCE, interleave_unpaired, train_with_trl, training_arguments


def train(context):
    cfg = context.config
    args = trl.KTOConfig(beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                         undesirable_weight=cfg.undesirable_weight, **training_arguments(context))
    examples = context.train_dataset
    if context.data_layout.kind == PREFERENCE:  # each pair: a desirable and an undesirable example
        examples = interleave_unpaired(examples)
    return train_with_trl(trl.KTOTrainer, args, dataclasses.replace(context, train_dataset=examples))
