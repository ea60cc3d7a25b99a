"""aligner: LoRA alignment algorithms on one frozen base model, and an honest way to compare them.

`aligner.run(...)` trains one algorithm, as `aligner run` does. Every name of the public API (`aligner.api`) is
also available here, imported on first use so that `import aligner` stays light (plugins are imported to list
them, long before anything trains)."""

from aligner.hookspecs import hookimpl
from aligner.registry import Algorithm, RewardFunction

__version__ = "0.1.0"


def run(algorithm: str, config=None, **settings) -> dict:
    """Trains `algorithm` and returns its summary (see `aligner.runner.run`)."""
    from aligner.runner import run as _run

    return _run(algorithm, config, **settings)


_API_NAMES = frozenset({"Algorithm", "RewardFunction", "hookimpl", "RunConfig", "setting", "TrainContext", "Placement",
    "AlignerError", "InputError", "RunError", "ConfigError", "DatasetError", "ModelLoadError", "CheckpointError",
    "TrainingError",
    "lora_config", "add_adapter", "active_adapter", "adapter_parameters", "save_adapter", "disable_dropout",
    "trainable_parameters", "base_fingerprint", "reference",
    "sample", "Samples", "prompt_texts", "response_forward", "response_logprobs", "ResponseForward", "position_ids",
    "ScalarHead", "last_token_index", "REWARD_ADAPTER", "RewardModel", "RewardModelError", "train_reward_model", "pairwise_accuracy", "save_reward_model",
    "load_reward_model", "read_reward_model_meta",
    "train_with_trl", "training_arguments",
    "rank", "world_size", "is_main", "barrier", "average_gradients", "clip_grad_norm_", "reduce_metrics",
    "sharding_requested", "shard", "is_sharded", "gathered", "gather_for_good",
    "save_state", "load_state", "state_exists", "CHECKPOINTS", "to_dict", "changed_settings", "settings_fingerprint"})
"""The names of `aligner.api.__all__` (a test keeps them equal): listed here so that `from aligner import config`
does not import the whole API (torch, transformers, peft) to find out that `config` is a submodule."""


def __getattr__(name: str):
    if name not in _API_NAMES:
        raise AttributeError(f"module 'aligner' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module("aligner.api"), name)


def __dir__():
    return sorted({*globals(), *_API_NAMES})


__all__ = ["run", "__version__", "Algorithm", "RewardFunction", "hookimpl"]
