"""Reward sources named on the command line: registered functions, plain callables and sequence-classification
reward models (`sources`, `classifier`). aligner's own reward model (an adapter and a head on the shared base) is
`aligner.reward_model`."""
