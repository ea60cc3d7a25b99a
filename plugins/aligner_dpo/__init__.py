"""DPO (Rafailov et al. 2023) through TRL's DPOTrainer, registered through the `aligner` entry-point group like any
third-party plugin."""

from aligner import Algorithm, hookimpl
from aligner_dpo.config import DPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="dpo", description="Direct Preference Optimization on a LoRA adapter (TRL DPOTrainer)",
                       config_class=DPOSettings, train="aligner_dpo.train:train"))
