"""The built-in DPO algorithm, registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_dpo.config import DPOSettings

    register(Algorithm(name="dpo", description="Direct Preference Optimization on a LoRA adapter (TRL DPOTrainer)",
                       config_class=DPOSettings, train=_train))


def _train(context):
    from aligner_dpo.trainer import train  # deferred: importing TRL costs seconds, `aligner plugins` needs none

    return train(context)
