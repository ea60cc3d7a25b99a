"""The `base` algorithm: trains nothing. It puts the base model through the exact run and evaluation every other
algorithm gets, so the base model is a row of every comparison (KL 0, the base's own gold reward)."""

from __future__ import annotations

from dataclasses import dataclass

from aligner import LAYOUTS, Algorithm, RunConfig, hookimpl, setting


@dataclass
class BaseSettings(RunConfig):
    """The base model as it is: an untrained (zero) LoRA adapter, evaluated like any trained policy."""

    max_steps: int = setting(1, "Unused: the base model is not trained.")


def _train(context):
    from peft import get_peft_model

    from aligner import lora_config

    context.summary_extras["trainable_params"] = 0  # the zero adapter is only the evaluation's handle
    return get_peft_model(context.base_model, lora_config(context.config))


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="base", description="No training: the base model, evaluated like every policy",
                       config_class=BaseSettings, train=_train, accepts=LAYOUTS))
