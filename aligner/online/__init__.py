"""Online RL: one engine for every online method (`engine`: the loop, checkpoints and resume; `rollout`: sampling
and scoring; `update`: the clipped update; `estimators`: what a method is, registered by name; `quantities`: the
shared arithmetic) and the settings they share (`settings`). Importing this package imports no torch."""
