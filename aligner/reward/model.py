"""The reward model: a LoRA adapter plus a scalar head on the shared base, trained with the Bradley-Terry loss
-log sigmoid(r(chosen) - r(rejected)) (Ouyang et al. 2022; Stiennon et al. 2020). A building block of the public
API: `aligner run reward` trains one on its own, and online algorithms (PPO) train or load one as their reward."""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

import torch

from aligner.data.batches import take
from aligner.data.encoding import PairBatch, encode_pairs
from aligner.errors import CheckpointError, DatasetError
from aligner.harness import stopping
from aligner.modeling.base import (active_adapter, adapter_parameters, add_adapter, base_fingerprint,
                                   checkpointing_active, save_adapter)
from aligner.modeling.heads import ScalarHead, last_token_index
from aligner.modeling.logprobs import final_hidden
from aligner.parallel import distributed

REWARD_ADAPTER = "reward"
"""The name of the reward model's LoRA adapter on the shared base."""


class RewardModelError(CheckpointError):
    """A reward model directory that cannot be used on this base."""


@dataclass
class RewardModel:
    head: ScalarHead

    @torch.no_grad()
    def score(self, model, input_ids, attention_mask) -> torch.Tensor:
        """Scores whole sequences (prompt + response + EOS) at their last real token."""
        with active_adapter(model, REWARD_ADAPTER, trainable=[]):
            return sequence_scores(model, self.head, input_ids, attention_mask)


def sequence_scores(model, head: ScalarHead, input_ids, attention_mask) -> torch.Tensor:
    """The head on the last real token's final hidden state; the LM head does not run over the sequence."""
    hidden = final_hidden(model, input_ids, attention_mask)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    return head(hidden[rows, last_token_index(attention_mask)])


def pair_margins(model, head: ScalarHead, pairs: PairBatch) -> torch.Tensor:
    """r(chosen) - r(rejected) of each pair, both encoded by the encoder the policy's losses use (a response
    is never cut before the prompt is, and ends with EOS), as the reward model scores sampled responses."""
    return (sequence_scores(model, head, pairs.chosen.input_ids, pairs.chosen.attention_mask)
            - sequence_scores(model, head, pairs.rejected.input_ids, pairs.rejected.attention_mask))


HELDOUT_SEED = 0
"""The held-out pairs are drawn with this seed whatever the run's seed: reward models of several seeds are then
measured on one set, so their accuracies differ by training alone, not by which pairs each happened to hold out."""


def split_pairs(rows, held_out_fraction: float, seed: int = HELDOUT_SEED) -> tuple[list[int], list[int]]:
    """Indices of the training and the held-out pairs of `rows` (a list of dicts, or a `datasets.Dataset`, whose
    prompt column alone is read), split by prompt so no held-out prompt is trained on."""
    keys = [json.dumps(p) for p in (rows["prompt"] if not isinstance(rows, list) else (r["prompt"] for r in rows))]
    prompts = sorted(set(keys))
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, int(len(prompts) * held_out_fraction))])
    train = [i for i, key in enumerate(keys) if key not in held]
    test = [i for i, key in enumerate(keys) if key in held]
    if not train or not test:
        raise DatasetError(f"{len(rows)} pairs are too few to hold out {held_out_fraction:.0%} for accuracy")
    return train, test



def accuracy_interval(correct: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson's 95% score interval for an accuracy of `correct` out of `total` pairs: unlike the normal
    approximation it stays inside [0, 1] and is honest near 0 and 1 and for small sets."""
    if total == 0:
        return 0.0, 1.0
    share = correct / total
    centre = (share + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(share * (1 - share) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


@torch.no_grad()
def pairwise_accuracy(model, head, tokenizer, rows, max_length, device, batch_size=64) -> float:
    """Share of preference pairs whose chosen response the reward model scores above the rejected one."""
    correct = 0
    with active_adapter(model, REWARD_ADAPTER, trainable=[]):
        for start in range(0, len(rows), batch_size):
            margin = pair_margins(model, head, encode_pairs(tokenizer, rows[start:start + batch_size], max_length,
                                                            device))
            correct += int((margin > 0).sum())
    return correct / len(rows)


def train_reward_model(model, tokenizer, rows, *, steps: int, batch_size: int, learning_rate: float,
                       max_length: int, heldout_fraction: float, seed: int, device, log_metrics
                       ) -> tuple[RewardModel, dict]:
    """Adds the `reward` adapter and head to `model`, trains them on `rows` (preference pairs: a list of dicts or a
    `datasets.Dataset`), and returns the model and its metrics."""
    train_rows, held_out = split_pairs(rows, heldout_fraction)
    test_rows = take(rows, held_out)
    if REWARD_ADAPTER not in model.peft_config:  # a sharded model has it added before sharding
        add_adapter(model, REWARD_ADAPTER)
    head = ScalarHead(model.config.hidden_size, zero_init=False).to(device)
    params = adapter_parameters(model, REWARD_ADAPTER) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, lr=learning_rate)
    gen = random.Random(seed + distributed.rank())  # data parallel: each process samples its own batches
    accuracy_before = pairwise_accuracy(model, head, tokenizer, test_rows, max_length, device)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, desc="reward model", dynamic_ncols=True, disable=not distributed.is_main())
    with active_adapter(model, REWARD_ADAPTER, trainable=params), checkpointing_active(model), bar, stopping.loop():
        for step in range(1, steps + 1):
            batch = take(rows, gen.sample(train_rows, min(batch_size, len(train_rows))))
            margin = pair_margins(model, head, encode_pairs(tokenizer, batch, max_length, device))
            loss = -torch.nn.functional.logsigmoid(margin).mean()
            loss.backward()
            distributed.average_gradients(params)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            log_metrics(step, distributed.reduce_metrics({"reward_model/loss": loss.item(),
                                                          "reward_model/accuracy": (margin > 0).float().mean().item()}))
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            stop = stopping.requested()
            if stop:  # a reward model is not checkpointed: what it trained so far is not kept
                raise stopping.stop(stop, step)
    for p in params:
        p.requires_grad_(False)
    accuracy = pairwise_accuracy(model, head, tokenizer, test_rows, max_length, device)
    low, high = accuracy_interval(round(accuracy * len(test_rows)), len(test_rows))
    return RewardModel(head), {"reward_model_accuracy": accuracy, "reward_model_accuracy_low": low,
                               "reward_model_accuracy_high": high, "reward_model_accuracy_before": accuracy_before,
                               "reward_model_train_pairs": len(train_rows),
                               "reward_model_heldout_pairs": len(test_rows)}


def save_reward_model(model, reward: RewardModel, directory: Path, metrics: dict) -> None:
    """Writes `adapter/`, `head.safetensors` and `reward_model.json` (metrics and the base fingerprint), whole or not
    at all (`rundir.write_folder`): a failed write (a full disk) leaves no reward model that looks complete."""
    from aligner.harness.rundir import write_folder

    def fill(folder: Path) -> None:
        save_adapter(model, REWARD_ADAPTER, folder / "adapter")
        reward.head.save(folder / "head.safetensors")
        meta = {"base_fingerprint": base_fingerprint(model), "base_model": model.config.name_or_path,
                "hidden_size": model.config.hidden_size, **metrics}
        (folder / "reward_model.json").write_text(json.dumps(meta, indent=2) + "\n")

    write_folder(Path(directory), fill)


def read_reward_model_meta(directory: Path) -> dict:
    """reward_model.json of a saved reward model, checked for what loading needs; refused naming the file."""
    directory = Path(directory)
    meta_path = directory / "reward_model.json"
    if not meta_path.is_file():
        raise RewardModelError(f"--reward-model {directory}: not a reward model directory (no reward_model.json); "
                               f"make one with `aligner run reward`")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RewardModelError(f"--reward-model {meta_path}: not valid JSON ({error})") from None
    if not (isinstance(meta, dict) and isinstance(meta.get("base_fingerprint"), str)
            and isinstance(meta.get("hidden_size"), int)):
        raise RewardModelError(f"--reward-model {meta_path}: needs base_fingerprint (a string) and hidden_size (an "
                               f"integer)")
    for part in ("adapter/adapter_config.json", "head.safetensors"):
        if not (directory / part).is_file():
            raise RewardModelError(f"--reward-model {directory}: {part} is missing")
    return meta


def load_reward_model(model, directory: Path, device) -> tuple[RewardModel, dict]:
    """Loads a saved reward model onto `model`'s base, refusing one trained on other base weights."""
    directory = Path(directory)
    meta = read_reward_model_meta(directory)
    if meta["base_fingerprint"] != base_fingerprint(model):
        raise RewardModelError(f"--reward-model {directory}: trained on different base weights than --model's "
                               f"({meta.get('base_model')}, fingerprint {meta['base_fingerprint']} against "
                               f"{base_fingerprint(model)}); train one on this base with `aligner run reward`")
    if meta["hidden_size"] != model.config.hidden_size:
        raise RewardModelError(f"--reward-model {directory}: head for hidden size {meta['hidden_size']}, the base "
                               f"has {model.config.hidden_size}")
    model.load_adapter(str(directory / "adapter"), adapter_name=REWARD_ADAPTER, is_trainable=False)
    head = ScalarHead(meta["hidden_size"], zero_init=True).to(device)
    head.load(directory / "head.safetensors")
    return RewardModel(head), meta
