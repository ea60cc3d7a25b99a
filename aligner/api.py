"""aligner's public API: everything an algorithm plugin needs, and the only module (with `aligner` itself) that
plugins import from. The built-in plugins under `plugins/` use nothing else, and a test holds them to it. Every
name is defined under the name it has here, in the module the import line names (no renaming on the way).

Registering: `Algorithm`, `RewardFunction`, `hookimpl`. Settings: `RunConfig`, `CheckpointSettings` (what a
loop that checkpoints reads), `setting`. What `train` receives:
`TrainContext`. Errors: `InputError` (exit 2) and `RunError` (exit 1) and their kinds. Building blocks, by job:

- the one base and its adapters: `lora_config`, `add_adapter`, `active_adapter`, `adapter_parameters`,
  `save_adapter`, `disable_dropout`, `trainable_parameters`, `base_fingerprint`, `reference` (adapters off),
  `untrained_policy` (the base in a zero adapter, as the `base` algorithm evaluates it),
  `enable_gradient_checkpointing`, `checkpointing_active`;
- sampling and log-probs: `sample`, `Samples`, `prompt_texts`, `response_forward`, `response_logprobs`,
  `position_ids`, `final_hidden` (last hidden states without the LM head), `head_logprobs` (chunked LM head);
- measuring: `TensorMemory` (peak bytes of live tensors, CPU or CUDA);
- offline training: `OfflineSettings` / `TRLComparableSettings`, `train_on_pairs` (give it a loss of
  `PairLogps`: policy and reference log-probs of chosen and rejected), `train_on_examples` (a loss of
  `ExampleLogps`, KTO's unpaired examples), `train_offline` (the engine's loop around any step function),
  `check_offline`; `encode_pairs` / `encode_sequences` (tokens, padding, masks), `sequence_logprobs`,
  `pair_batches`, `ShuffledOrder`;
- online training on aligner's online engine: `OnlineSettings`, `register_estimator` (under a name: a function of
  an `OnlineRollout` and the settings returning per-token advantages, or an `Estimator` class, which has state),
  `train_online(context, name)`, `check_online`; the quantities every online method shares, each defined once
  (`masked_mean`, `masked_var`, `masked_whiten`, `kl_estimate` k1/k3, `aggregate`, `policy_loss` with its
  `clipfrac`); `check_finite` (the one rule for NaN and infinite values in a training loop);
- data: the layouts an algorithm can declare it trains on (`PREFERENCE`, `UNPAIRED`, `PROMPT`, `LAYOUTS` for
  all), `PromptRows` (distinct prompts with their columns, for online methods), `repeat_columns`,
  `interleave_unpaired` (pairs as KTO's desirable and undesirable examples);
- rewards read from the command line: `resolve_reward`, `RewardSource`, `RewardError`, `completions_like`;
- heads and reward models: `ScalarHead`, `last_token_index`, `RewardModel`, `train_reward_model`,
  `save_reward_model`, `load_reward_model`, `read_reward_model_meta`; reward sources for online algorithms
  (a reward model or a reward function): `RewardSourceSettings`, `attach_reward`, `reward_scorer`,
  `check_reward`;
- TRL trainers: `train_with_trl`, `training_arguments`;
- several processes: `rank`, `world_size`, `is_main`, `barrier`, `average_gradients`, `clip_grad_norm_`,
  `reduce_metrics`; FSDP2 sharding: `sharding_requested`, `shard`, `is_sharded`, `gathered`, `gather_full_weights`;
- state and checkpoints: `save_state`, `load_state`, `state_exists`, `find_checkpoint`, `write_checkpoint`,
  `read_checkpoint`, `random_streams`, `restore_random_streams`, `continue_run`, `CHECKPOINTS`, `to_dict`,
  `changed_settings`, `settings_fingerprint`.
"""

import warnings

from aligner.config import CheckpointSettings, RunConfig, changed_settings, setting, settings_fingerprint, to_dict
from aligner.data.batches import ShuffledOrder, pair_batches
from aligner.data.encoding import PairBatch, Sequences, encode_pairs, encode_sequences
from aligner.data.kinds import LAYOUTS, PREFERENCE, PROMPT, UNPAIRED
from aligner.data.layouts import interleave_unpaired
from aligner.data.prompts import PromptRows, repeat_columns
from aligner.errors import (AlignerError, CheckpointError, ConfigError, DatasetError, InputError, ModelLoadError,
                            RunError, TrainingError)
from aligner.harness.memory import TensorMemory
from aligner.harness.rundir import CHECKPOINTS
from aligner.harness.runner import TrainContext
from aligner.hookspecs import hookimpl
from aligner.modeling.base import (Placement, active_adapter, adapter_parameters, add_adapter, base_fingerprint,
                                   checkpointing_active, disable_dropout, enable_gradient_checkpointing, lora_config,
                                   reference, save_adapter, trainable_parameters, untrained_policy)
from aligner.modeling.heads import ScalarHead, last_token_index
from aligner.modeling.logprobs import (ResponseForward, final_hidden, head_logprobs, position_ids, response_forward,
                                       response_logprobs, sequence_logprobs)
from aligner.modeling.sampling import Samples, prompt_texts, sample
from aligner.offline.engine import check_offline, train_offline, train_on_examples, train_on_pairs
from aligner.offline.logps import ExampleLogps, PairLogps
from aligner.offline.settings import OfflineSettings, TRLComparableSettings
from aligner.online.engine import check_online, train_online
from aligner.online.estimators import Advantages, Estimator, register_estimator
from aligner.online.quantities import (PolicyLoss, aggregate, kl_estimate, masked_mean, masked_var, masked_whiten,
                                       policy_loss)
from aligner.online.rollout import OnlineRollout
from aligner.online.settings import OnlineSettings, RewardSourceSettings
from aligner.parallel.distributed import (average_gradients, barrier, clip_grad_norm_, is_main, rank, reduce_metrics,
                                          world_size)
from aligner.parallel.sharding import gather_full_weights, gathered, is_sharded, shard, sharding_requested
from aligner.registry import Algorithm, RewardFunction
from aligner.reward.model import (REWARD_ADAPTER, RewardModel, RewardModelError, load_reward_model, pairwise_accuracy,
                                  read_reward_model_meta, save_reward_model, train_reward_model)
from aligner.reward.scoring import attach_reward, check_reward, completions_like, reward_scorer
from aligner.reward.sources import RewardError, RewardSource, resolve_reward
from aligner.training.checkpoints import (continue_run, find_checkpoint, load_state, random_streams, read_checkpoint,
                                          restore_random_streams, save_state, state_exists, write_checkpoint)
from aligner.training.guards import check_finite
from aligner.training.trl_trainers import train_with_trl, training_arguments

__all__ = [
    "Algorithm", "RewardFunction", "hookimpl", "RunConfig", "CheckpointSettings", "setting", "TrainContext",
    "Placement",
    "AlignerError", "InputError", "RunError", "ConfigError", "DatasetError", "ModelLoadError", "CheckpointError",
    "TrainingError",
    "lora_config", "add_adapter", "active_adapter", "adapter_parameters", "save_adapter", "disable_dropout",
    "trainable_parameters", "base_fingerprint", "reference", "untrained_policy", "enable_gradient_checkpointing", "checkpointing_active",
    "sample", "Samples", "prompt_texts", "response_forward", "response_logprobs", "ResponseForward", "position_ids",
    "final_hidden", "head_logprobs", "sequence_logprobs", "TensorMemory",
    "OnlineSettings", "RewardSourceSettings", "OnlineRollout", "train_online", "check_online", "Advantages",
    "Estimator", "register_estimator", "PolicyLoss", "policy_loss", "aggregate", "kl_estimate", "masked_mean", "masked_var", "masked_whiten", "check_finite",
    "PairBatch", "Sequences", "encode_pairs", "encode_sequences", "pair_batches", "ShuffledOrder",
    "OfflineSettings", "TRLComparableSettings", "PairLogps", "ExampleLogps", "train_on_pairs", "train_on_examples",
    "train_offline", "check_offline",
    "ScalarHead", "last_token_index", "REWARD_ADAPTER", "RewardModel", "RewardModelError", "train_reward_model",
    "pairwise_accuracy", "save_reward_model", "load_reward_model", "read_reward_model_meta", "attach_reward",
    "reward_scorer", "check_reward",
    "train_with_trl", "training_arguments",
    "rank", "world_size", "is_main", "barrier", "average_gradients", "clip_grad_norm_", "reduce_metrics",
    "sharding_requested", "shard", "is_sharded", "gathered", "gather_full_weights",
    "save_state", "load_state", "state_exists", "find_checkpoint", "CHECKPOINTS", "to_dict", "changed_settings",
    "settings_fingerprint", "random_streams", "restore_random_streams", "write_checkpoint", "read_checkpoint",
    "continue_run",
    "PromptRows", "repeat_columns", "RewardSource", "RewardError", "resolve_reward", "completions_like",
    "PREFERENCE", "UNPAIRED", "PROMPT", "LAYOUTS", "interleave_unpaired",
]

DEPRECATED = {"RewardSettings": "RewardSourceSettings", "gather_for_good": "gather_full_weights"}
"""Old public name -> its new name. The old names still work, with a DeprecationWarning, for one release."""


def __getattr__(name: str):
    if name in DEPRECATED:
        new = DEPRECATED[name]
        warnings.warn(f"aligner.api.{name} is deprecated: use {new} (the old name goes in the next release)",
                      DeprecationWarning, stacklevel=2)
        return globals()[new]
    raise AttributeError(f"module 'aligner.api' has no attribute {name!r}")
