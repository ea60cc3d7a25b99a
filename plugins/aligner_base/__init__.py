"""The `base` algorithm: trains nothing. It puts the base model through the exact run and evaluation every other
algorithm gets, so the base model is a row of every comparison (KL 0, the base's own gold reward). Its `train`
wraps the base in a zero adapter, the handle the evaluation reads; it lives in `aligner.api` (`untrained_policy`)."""

from aligner import LAYOUTS, Algorithm, hookimpl
from aligner_base.config import BaseSettings


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="base", description="No training: the base model, evaluated like every policy",
                       config_class=BaseSettings, train="aligner.api:untrained_policy", accepts=LAYOUTS))
