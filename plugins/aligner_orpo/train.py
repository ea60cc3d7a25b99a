"""ORPO's training: aligner's offline engine (`--implementation aligner`), or TRL's experimental ORPOTrainer
(`--implementation trl`; aligner's engine is used, with a warning, when the installed TRL no longer ships
`trl.experimental.orpo`, which TRL prunes between releases). The loss, as TRL's ORPOTrainer (contributed by the
ORPO authors) computes it: the negative log-likelihood per token of the chosen sequences, prompt tokens included
(the paper writes it over the response), minus beta * log sigmoid of the log odds ratio of the per-token average
log-probabilities of the chosen and rejected responses."""

from __future__ import annotations

import os
import warnings

from aligner.api import train_on_pairs, train_with_trl, training_arguments
from aligner_orpo.loss import odds_ratio_term


def train(context):
    if context.config.implementation == "trl":
        os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # experimental on purpose; pyproject pins trl
        try:
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer
        except ImportError as error:
            warnings.warn(f"orpo: TRL's ORPOTrainer is not available ({error}); training with aligner's offline "
                          f"engine (the same loss)")
        else:
            args = ORPOConfig(beta=context.config.beta, **training_arguments(context))
            return train_with_trl(ORPOTrainer, args, context)
    beta = context.config.beta

    def loss(logps):
        nll = -logps.chosen_sequence.sum() / logps.chosen_sequence_tokens.sum()
        ratio = odds_ratio_term(logps.chosen_mean, logps.rejected_mean)
        return nll - beta * ratio.mean(), {
            "nll_loss": nll.item(), "log_odds_ratio": ratio.mean().item(),
            "rewards/margins": beta * (logps.chosen_mean - logps.rejected_mean).mean().item()}

    return train_on_pairs(context, loss, reference=False, desc="orpo", chosen_sequence=True)
