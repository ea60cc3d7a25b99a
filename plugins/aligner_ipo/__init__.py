"""IPO (Azar et al. 2023) through TRL's DPOTrainer with `loss_type="ipo"`: a squared loss that pulls the
(length-averaged) log-ratio margin to 1/(2 tau) instead of pushing it without bound."""

from dataclasses import dataclass

from aligner import Algorithm, RunConfig, hookimpl, setting


@dataclass
class IPOSettings(RunConfig):
    """IPO on a LoRA adapter; the reference is the base with the adapter disabled."""

    beta: float = setting(0.1, "tau: the margin target is 1 / (2 tau); higher keeps the policy closer to the "
                               "reference.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta"])


def train(context):
    import trl

    from aligner.api import train_with_trl, training_arguments

    args = trl.DPOConfig(beta=context.config.beta, loss_type=["ipo"], **training_arguments(context))
    return train_with_trl(trl.DPOTrainer, args, context)


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="ipo", description="Identity preference optimisation (TRL DPOTrainer, loss ipo)",
                       config_class=IPOSettings, train=train))
