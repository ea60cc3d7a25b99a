"""Rewards: sources named on the command line (registered functions, plain callables and sequence-classification
reward models: `sources`, `classifier`), aligner's own reward model (an adapter and a head on the shared base:
`model`), the reward an online run scores with (`scoring`) and the judges an evaluation adds (`judges`)."""
