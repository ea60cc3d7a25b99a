"""Training shared by every loop: checkpoints and the state files they hold (`checkpoints`), the finite-value guard
(`guards`) and the glue to TRL's trainers (`trl_trainers`)."""
