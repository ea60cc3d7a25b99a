"""The offline engine: one optimizer loop over fixed data (preference pairs, or unpaired examples) for every
offline method, with the policy's and the reference's log-probs computed once per batch, checkpoints and resume."""
