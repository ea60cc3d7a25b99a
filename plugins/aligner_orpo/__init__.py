"""ORPO (Hong et al. 2024), registered through the `aligner` entry-point group like any third-party plugin."""

from aligner import Algorithm, hookimpl
from aligner_orpo.config import ORPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="orpo", description="Odds Ratio Preference Optimization on a LoRA adapter",
                       config_class=ORPOSettings, train="aligner_orpo.train:train", check="aligner.api:check_offline"))
