"""Training shared by the algorithms: the offline pair loop (`optimize`), checkpoint state files every loop writes
(`checkpoints`), the finite-value guard (`guards`) and the glue to TRL's trainers (`trl_trainers`)."""
