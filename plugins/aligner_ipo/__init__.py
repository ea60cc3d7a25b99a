"""IPO (Azar et al. 2023) through TRL's DPOTrainer with `loss_type="ipo"`: a squared loss that pulls the
(length-averaged) log-ratio margin to 1/(2 tau) instead of pushing it without bound."""

from aligner import Algorithm, hookimpl
from aligner_ipo.config import IPOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="ipo", description="Identity preference optimisation (TRL DPOTrainer, loss ipo)",
                       config_class=IPOSettings, train="aligner_ipo.train:train"))
