"""GRPO (Shao et al. 2024, DeepSeekMath): G responses per prompt, each advantaged by its group's mean (and std),
the clipped-ratio objective, and the k3 KL to the reference as a loss term. No critic."""

from aligner import Algorithm, LAYOUTS, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_grpo.config import GRPOSettings

    register(Algorithm(name="grpo", description="Group-relative policy optimisation: G samples per prompt, "
                                                "group-baselined advantages, no critic", config_class=GRPOSettings,
                       train=_train, check=_check, accepts=LAYOUTS))


def _train(context):
    from aligner.api import train_online
    from aligner_grpo.advantages import advantages

    cfg = context.config
    return train_online(context, advantages, kl_in_loss=True, aggregation=cfg.loss_aggregation, name="grpo")


def _check(config, registry):
    from aligner.api import check_online

    check_online(config, registry)
