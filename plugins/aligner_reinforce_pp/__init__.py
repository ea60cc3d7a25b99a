"""REINFORCE++ (Hu 2025): a per-token KL penalty folded into the reward as PPO does, returns without a critic, and
advantages normalised over the whole batch rather than per prompt."""

from aligner import Algorithm, LAYOUTS, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_reinforce_pp.config import ReinforcePPSettings

    register(Algorithm(name="reinforce-pp", description="REINFORCE++: token-level KL penalty, batch-normalised "
                                                        "returns, no critic", config_class=ReinforcePPSettings,
                       train=_train, check=_check, accepts=LAYOUTS))


def _train(context):
    from aligner.api import train_online
    from aligner_reinforce_pp.advantages import advantages

    return train_online(context, advantages, kl_in_loss=False, aggregation="token", name="reinforce++")


def _check(config, registry):
    from aligner.api import check_online

    check_online(config, registry)
