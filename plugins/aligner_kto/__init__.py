"""KTO (Ethayarajh et al. 2024) on aligner's offline engine (or TRL's KTOTrainer, `--implementation trl`): each
pair becomes a desirable (chosen) and an undesirable (rejected) example, and each is scored against a reference
point, the batch's KL to the reference."""

from aligner import PREFERENCE, UNPAIRED, Algorithm, hookimpl
from aligner_kto.config import KTOSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="kto", description="Kahneman-Tversky optimisation from pairs split into desirable and "
                                               "undesirable examples, or unpaired examples",
                       config_class=KTOSettings, train="aligner_kto.train:train", accepts=(PREFERENCE, UNPAIRED),
                       check="aligner.api:check_offline"))
