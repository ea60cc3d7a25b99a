"""KTO (Ethayarajh et al. 2024) through TRL's KTOTrainer: each pair becomes a desirable (chosen) and an undesirable
(rejected) example, and each is scored against a reference point, the batch's KL to the reference."""

from dataclasses import dataclass

from aligner import PREFERENCE, UNPAIRED, Algorithm, ConfigError, RunConfig, hookimpl, setting


@dataclass
class KTOSettings(RunConfig):
    """KTO on a LoRA adapter; the reference is the base with the adapter disabled."""

    beta: float = setting(0.1, "KL strength: higher keeps the policy closer to the reference.")
    desirable_weight: float = setting(1.0, "Weight of the desirable (chosen) examples' losses.")
    undesirable_weight: float = setting(1.0, "Weight of the undesirable (rejected) examples' losses.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["beta", "desirable_weight", "undesirable_weight"])
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size must be at least 2 for KTO (its reference point pairs each prompt "
                              f"with another example's response), got {self.batch_size}")


def train(context):
    import dataclasses

    import trl

    from aligner.api import interleave_unpaired, train_with_trl, training_arguments

    cfg = context.config
    args = trl.KTOConfig(beta=cfg.beta, desirable_weight=cfg.desirable_weight,
                         undesirable_weight=cfg.undesirable_weight, **training_arguments(context))
    examples = context.train_dataset
    if context.data_layout.kind == PREFERENCE:  # each pair: a desirable and an undesirable example
        examples = interleave_unpaired(examples)
    return train_with_trl(trl.KTOTrainer, args, dataclasses.replace(context, train_dataset=examples))


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="kto", description="Kahneman-Tversky optimisation from pairs split into desirable and "
                                               "undesirable examples, or unpaired examples (TRL KTOTrainer)",
                       config_class=KTOSettings, train=train, accepts=(PREFERENCE, UNPAIRED)))
