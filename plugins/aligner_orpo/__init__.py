"""The built-in ORPO algorithm, registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_orpo.config import ORPOSettings

    register(Algorithm(name="orpo", description="Odds Ratio Preference Optimization on a LoRA adapter "
                                                "(TRL experimental ORPOTrainer)",
                       config_class=ORPOSettings, train=_train))


def _train(context):
    # deferred: importing TRL costs seconds, `aligner plugins` needs none
    if context.config.implementation == "trl":
        try:
            from aligner_orpo.trainer import train
        except ImportError as error:  # TRL prunes trl.experimental between minor releases
            import warnings

            warnings.warn(f"orpo: TRL's ORPOTrainer is not available ({error}); training with aligner's own ORPO "
                          f"loop (the same loss)")
        else:
            return train(context)
    from aligner_orpo.own import train

    return train(context)
