"""Online RL: settings shared by every online method (`settings`), the critic-free loop GRPO, RLOO and
REINFORCE++ run on (`critic_free`) and its checkpoints (`checkpoint`). Importing this package imports no torch."""
