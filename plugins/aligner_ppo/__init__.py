"""The built-in PPO algorithm, registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, LAYOUTS, hookimpl


@hookimpl
def register_algorithms(register):
    from aligner_ppo.config import PPOSettings

    register(Algorithm(name="ppo", description="RLHF PPO with a shared value head or a separate critic adapter, "
                                               "every role on one base", config_class=PPOSettings, train=_train_ppo,
                       check=_check_ppo, accepts=LAYOUTS))


def _train_ppo(context):
    from aligner_ppo.trainer import train  # deferred: `aligner plugins` needs none of the training code

    return train(context)


def _check_ppo(config, registry):
    from aligner_ppo.trainer import check

    check(config, registry)

