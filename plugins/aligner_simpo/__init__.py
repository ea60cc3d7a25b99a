"""SimPO (Meng et al. 2024): reference-free, length-normalised preference optimisation with a target margin,
written only against aligner's public API, as a third-party plugin would be."""

from aligner import Algorithm, hookimpl
from aligner_simpo.config import SimPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="simpo", description="SimPO: reference-free, length-normalised preference optimisation",
                       config_class=SimPOSettings, train="aligner_simpo.train:train",
                       check="aligner.api:check_offline"))
