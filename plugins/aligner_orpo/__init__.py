"""The built-in ORPO algorithm, registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_orpo.config import ORPOSettings

    register(Algorithm(name="orpo", description="Odds Ratio Preference Optimization on a LoRA adapter "
                                                "(TRL experimental ORPOTrainer)",
                       config_class=ORPOSettings, train=_train))


def _train(context):
    from aligner_orpo.trainer import train  # deferred: importing TRL costs seconds, `aligner plugins` needs none

    return train(context)
