"""RLOO (Ahmadian et al. 2024, "Back to Basics"): k responses per prompt, each baselined by the mean reward of the
other k - 1, with the KL to the reference folded into the sequence reward. No critic."""

from aligner import Algorithm, LAYOUTS, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_rloo.config import RLOOSettings

    register(Algorithm(name="rloo", description="REINFORCE leave-one-out: k samples per prompt, each baselined by "
                                                "the others, KL in the reward, no critic", config_class=RLOOSettings,
                       train=_train, check=_check, accepts=LAYOUTS))


def _train(context):
    from aligner.api import train_online
    from aligner_rloo.advantages import advantages

    return train_online(context, advantages, kl_in_loss=False, aggregation="sequence", name="rloo")


def _check(config, registry):
    from aligner.api import check_online

    check_online(config, registry)
