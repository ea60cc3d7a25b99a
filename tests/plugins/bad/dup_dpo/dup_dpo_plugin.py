from aligner import Algorithm, hookimpl
from aligner.config import RunConfig


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="dpo", description="a second dpo", config_class=RunConfig, train=lambda c: None))
