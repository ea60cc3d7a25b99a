"""DPO (Rafailov et al. 2023) on aligner's offline engine (or TRL's DPOTrainer with `--implementation trl`),
registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl
from aligner_dpo.config import DPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="dpo", description="Direct Preference Optimization on a LoRA adapter",
                       config_class=DPOSettings, train="aligner_dpo.train:train", check="aligner.api:check_offline"))
