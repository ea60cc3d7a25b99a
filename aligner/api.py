"""aligner's public API: everything an algorithm plugin needs, and the only module (with `aligner` itself) that
plugins import from. The built-in plugins under `plugins/` use nothing else, and a test holds them to it.

Registering: `Algorithm`, `RewardFunction`, `hookimpl`. Settings: `RunConfig`, `setting`. What `train` receives:
`TrainContext`. Errors: `InputError` (exit 2) and `RunError` (exit 1) and their kinds. Building blocks, by job:

- the one base and its adapters: `lora_config`, `add_adapter`, `active_adapter`, `adapter_parameters`,
  `save_adapter`, `disable_dropout`, `trainable_parameters`, `base_fingerprint`, `reference` (adapters off),
  `enable_gradient_checkpointing`, `checkpointing_active`;
- sampling and log-probs: `sample`, `Samples`, `prompt_texts`, `response_forward`, `response_logprobs`,
  `position_ids`, `final_hidden` (last hidden states without the LM head), `head_logprobs` (chunked LM head);
- measuring: `TensorMemory` (peak bytes of live tensors, CPU or CUDA);
- offline training on pairs: `encode_pairs` / `encode_sequences` (tokens, padding, masks), `sequence_logprobs`,
  `pair_batches`, `optimize` (AdamW, warm-up, clipping, gradient averaging, logging, progress);
- critic-free online training: `OnlineSettings`, `train_online` (give it an advantage function of an
  `OnlineRollout`), `clipped_loss`, `aggregate`, `k3`;
- data: the layouts an algorithm can declare it trains on (`PREFERENCE`, `UNPAIRED`, `PROMPT`, `LAYOUTS` for
  all), `PromptRows` (distinct prompts with their columns, for online methods), `repeat_columns`,
  `interleave_unpaired` (pairs as KTO's desirable and undesirable examples);
- rewards read from the command line: `resolve_reward`, `RewardSource`, `RewardError`, `completions_like`;
- heads and reward models: `ScalarHead`, `last_token_index`, `RewardModel`, `train_reward_model`,
  `save_reward_model`, `load_reward_model`, `read_reward_model_meta`; reward sources for online algorithms
  (a reward model or a reward function): `RewardSettings`, `attach_reward`, `reward_scorer`, `check_reward`;
- TRL trainers: `train_with_trl`, `training_arguments`;
- several processes: `rank`, `world_size`, `is_main`, `barrier`, `average_gradients`, `clip_grad_norm_`,
  `reduce_metrics`; FSDP2 sharding: `sharding_requested`, `shard`, `is_sharded`, `gathered`, `gather_for_good`;
- state and checkpoints: `save_state`, `load_state`, `state_exists`, `find_checkpoint`, `CHECKPOINTS`, `to_dict`,
  `changed_settings`, `settings_fingerprint`.
"""

from aligner.config import RunConfig, changed_settings, setting, to_dict
from aligner.data.prompts import PromptRows, repeat_columns
from aligner.config import fingerprint as settings_fingerprint
from aligner.data.kinds import LAYOUTS, PREFERENCE, PROMPT, UNPAIRED
from aligner.data.layouts import interleave_unpaired
from aligner.distributed import (average_gradients, barrier, clip_grad_norm_, is_main, rank, reduce_metrics,
                                 world_size)
from aligner.errors import (AlignerError, CheckpointError, ConfigError, DatasetError, InputError, ModelLoadError,
                            RunError, TrainingError)
from aligner.evaluation import reference
from aligner.heads import ScalarHead, last_token_index
from aligner.hookspecs import hookimpl
from aligner.logprobs import (ResponseForward, final_hidden, head_logprobs, position_ids, response_forward,
                              response_logprobs)
from aligner.memory import TensorMemory
from aligner.online import Rollout as OnlineRollout
from aligner.online import aggregate, clipped_loss, k3, train_online
from aligner.online import check as check_online
from aligner.online_settings import OnlineSettings, RewardSettings
from aligner.loop import optimize
from aligner.pairs import PairBatch, Sequences, encode_pairs, encode_sequences, pair_batches, sequence_logprobs
from aligner.models import (Placement, active_adapter, adapter_parameters, add_adapter, base_fingerprint,
                            checkpointing_active, disable_dropout, enable_gradient_checkpointing, lora_config,
                            save_adapter, trainable_parameters)
from aligner.registry import Algorithm, RewardFunction
from aligner.reward_model import ADAPTER as REWARD_ADAPTER
from aligner.reward_model import RewardModel, RewardModelError, pairwise_accuracy, train_reward_model
from aligner.reward_model import load as load_reward_model
from aligner.reward_model import read_meta as read_reward_model_meta
from aligner.reward_model import save as save_reward_model
from aligner.reward.sources import RewardError, RewardSource
from aligner.reward.sources import resolve as resolve_reward
from aligner.rewards import attach as attach_reward
from aligner.rewards import completions_like
from aligner.rewards import check as check_reward
from aligner.rewards import scorer as reward_scorer
from aligner.rundir import CHECKPOINTS
from aligner.runner import TrainContext
from aligner.sampling import Samples, prompt_texts, sample
from aligner.sharding import gather_for_good, gathered, is_sharded, shard
from aligner.sharding import requested as sharding_requested
from aligner.state_io import exists as state_exists
from aligner.state_io import find_checkpoint
from aligner.state_io import load as load_state
from aligner.state_io import save as save_state
from aligner.trl_support import train_with_trl, training_arguments

hookimpl = hookimpl
"""Marks a plugin's hook implementations: `@hookimpl def register_algorithms(register): ...`."""
REWARD_ADAPTER = REWARD_ADAPTER
"""The name of the reward model's LoRA adapter on the shared base."""
CHECKPOINTS = CHECKPOINTS
"""The folder of a run directory where an algorithm writes `step-N/` checkpoints (kept after a failure)."""

__all__ = [
    "Algorithm", "RewardFunction", "hookimpl", "RunConfig", "setting", "TrainContext", "Placement",
    "AlignerError", "InputError", "RunError", "ConfigError", "DatasetError", "ModelLoadError", "CheckpointError",
    "TrainingError",
    "lora_config", "add_adapter", "active_adapter", "adapter_parameters", "save_adapter", "disable_dropout",
    "trainable_parameters", "base_fingerprint", "reference", "enable_gradient_checkpointing", "checkpointing_active",
    "sample", "Samples", "prompt_texts", "response_forward", "response_logprobs", "ResponseForward", "position_ids",
    "final_hidden", "head_logprobs", "TensorMemory",
    "OnlineSettings", "RewardSettings", "OnlineRollout", "train_online", "check_online", "clipped_loss", "aggregate",
    "k3",
    "PairBatch", "Sequences", "encode_pairs", "encode_sequences", "pair_batches", "sequence_logprobs", "optimize",
    "ScalarHead", "last_token_index", "REWARD_ADAPTER", "RewardModel", "RewardModelError", "train_reward_model", "pairwise_accuracy", "save_reward_model",
    "load_reward_model", "read_reward_model_meta", "attach_reward", "reward_scorer", "check_reward",
    "train_with_trl", "training_arguments",
    "rank", "world_size", "is_main", "barrier", "average_gradients", "clip_grad_norm_", "reduce_metrics",
    "sharding_requested", "shard", "is_sharded", "gathered", "gather_for_good",
    "save_state", "load_state", "state_exists", "find_checkpoint", "CHECKPOINTS", "to_dict", "changed_settings",
    "settings_fingerprint",
    "PromptRows", "repeat_columns", "RewardSource", "RewardError", "resolve_reward", "completions_like",
    "PREFERENCE", "UNPAIRED", "PROMPT", "LAYOUTS", "interleave_unpaired",
]
