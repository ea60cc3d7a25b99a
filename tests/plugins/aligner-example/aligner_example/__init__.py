"""A complete third-party algorithm: SFT of a LoRA adapter on the chosen responses (a common alignment baseline).

The shape every aligner plugin has: this file holds the hook only; `config.py` the settings (a dataclass that
extends aligner's RunConfig, whose fields become CLI flags); `train.py` a `train(context)` that returns the trained
PeftModel, named here as "module:function" so that listing plugins imports none of the training code.
"""

from aligner import Algorithm, hookimpl
from aligner_example.config import SFTChosenSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="sft-chosen", description="SFT on the chosen responses (example third-party plugin)",
                       config_class=SFTChosenSettings, train="aligner_example.train:train"))
