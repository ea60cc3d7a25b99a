"""IPO (Azar et al. 2023) on aligner's offline engine (or TRL's DPOTrainer with its ipo loss, `--implementation
trl`)."""

from aligner import Algorithm, hookimpl
from aligner_ipo.config import IPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="ipo", description="Identity Preference Optimisation on a LoRA adapter",
                       config_class=IPOSettings, train="aligner_ipo.train:train", check="aligner.api:check_offline"))
