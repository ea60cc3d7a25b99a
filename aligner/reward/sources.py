"""Rewards and judges named on the command line (`--reward`, `--gold-reward`), resolved in one order: a registered
reward function's name, then `module:function` or `file.py:function` (a plain callable, no packaging), then a
sequence-classification reward model (a folder or hub id whose config is `*ForSequenceClassification` with one
label).

Every function is called as TRL calls its `reward_funcs`: `f(prompts=..., completions=..., **columns)`, with the
prompts as the data has them (strings, or message lists), the completions likewise (strings, or a one-message list
`[{"role": "assistant", "content": ...}]` for conversational prompts), and each other column of the rows as a
keyword list; a score may be None for a row the function does not score. So a TRL reward function works
unchanged. A function that takes neither `completions` nor `**kwargs` is called the older way,
`f(prompts, completions)`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from aligner.errors import ConfigError, InputError, TrainingError


class RewardError(InputError):
    """A reward or judge that cannot be used: it cannot be imported, or it failed the probe before training."""


@dataclass
class RewardSource:
    """One resolved reward: `score(prompts, completions, columns)` -> one float (or None) per row."""

    name: str
    kind: str                        # "registered", "callable" or "classifier"
    function: Callable
    memory_mb: float | None = None   # a classifier's weights: a second model, reported on its own line

    def __call__(self, prompts: list, completions: list, columns: dict[str, list]) -> list:
        if _takes_keywords(self.function):
            return self.function(prompts=prompts, completions=completions, **columns)
        return self.function(prompts, completions)


def _takes_keywords(function: Callable) -> bool:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.kind is p.VAR_KEYWORD or p.name == "completions" for p in parameters)


def _import_callable(spec: str, flag: str) -> Callable:
    target, _, name = spec.rpartition(":")
    try:
        if target.endswith(".py"):
            path = Path(target).expanduser()
            if not path.is_file():
                raise RewardError(f"{flag} {spec}: no such file {target}")
            module_name = f"aligner_user_reward_{abs(hash(str(path.resolve())))}"
            loader = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(loader)
            sys.modules[module_name] = module
            loader.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except RewardError:
        raise
    except Exception as error:
        raise RewardError(f"{flag} {spec}: could not import {target} ({type(error).__name__}: {error})") from None
    function = getattr(module, name, None)
    if not callable(function):
        raise RewardError(f"{flag} {spec}: {target} has no function {name!r}")
    return function


def looks_like_model(spec: str) -> bool:
    """A local folder with a config.json, or a name shaped like a hub id (owner/name)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return True
    return spec.count("/") == 1 and not spec.startswith((".", "/", "~")) and " " not in spec


def check_classifier(spec: str, flag: str, trust_remote_code: bool = False):
    """The config of a one-label sequence-classification model, or a one-line refusal."""
    from transformers import AutoConfig

    path = Path(spec).expanduser()
    if path.is_dir() and not (path / "config.json").is_file():
        raise RewardError(f"{flag} {spec}: a folder with no config.json: not a model")
    try:
        config = AutoConfig.from_pretrained(spec, trust_remote_code=trust_remote_code)
    except Exception as error:
        raise RewardError(f"{flag} {spec}: not a registered reward, module:function or file.py:function, and "
                          f"loading it as a model failed ({type(error).__name__}: "
                          f"{str(error).strip().splitlines()[0][:200] if str(error).strip() else ''})") from None
    architectures = getattr(config, "architectures", None) or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise RewardError(f"{flag} {spec}: not a sequence-classification reward model (architectures: "
                          f"{', '.join(architectures) or 'none'}); a reward model's config names a "
                          f"*ForSequenceClassification architecture with one label")
    if config.num_labels != 1:
        raise RewardError(f"{flag} {spec}: a sequence classifier with {config.num_labels} labels; a reward model "
                          f"has one (a scalar score)")
    return config


def resolve_reward(spec: str, registry, flag: str, trust_remote_code: bool = False, load: bool = True,
            device=None, dtype=None) -> RewardSource:
    """`spec` as a reward source, in the module docstring's order. With `load=False` only the checks that cost no
    weights run (imports, configs), and a classifier's model is not loaded."""
    if spec in registry.reward_functions:
        return RewardSource(spec, "registered", registry.reward_function(spec).score)
    if ":" in spec:
        return RewardSource(spec, "callable", _import_callable(spec, flag))
    if looks_like_model(spec):
        check_classifier(spec, flag, trust_remote_code)
        if not load:
            return RewardSource(spec, "classifier", lambda *a, **k: [])
        from aligner.reward.classifier import SequenceClassifierReward

        scorer = SequenceClassifierReward(spec, device, dtype, trust_remote_code)
        return RewardSource(spec, "classifier", scorer.score, scorer.memory_mb)
    valid = ", ".join(sorted(registry.reward_functions)) or "none installed"
    raise RewardError(f"{flag} {spec}: unknown reward; give a registered name ({valid}), module:function, "
                      f"file.py:function, or a sequence-classification model folder or hub id")


def scores_checked(source: RewardSource, prompts: list, completions: list, columns: dict[str, list],
                   error: type = TrainingError, when: str = "while training") -> list:
    """Calls `source` and checks what comes back: one finite float or None per row. A failure names the reward and
    the row (its prompt) and raises `error`: RewardError in the probe before training (exit 2), TrainingError
    later (exit 1)."""
    def row_named(i: int) -> str:
        prompt = prompts[i] if isinstance(prompts[i], str) else prompts[i][-1].get("content", "")
        return f"row {i + 1} of {len(prompts)} (prompt {prompt[:60]!r})"

    try:
        scores = source(prompts, completions, columns)
    except Exception as raised:
        where = ""
        for i in range(len(prompts)):  # one row at a time, to name the row that raises
            try:
                source(prompts[i:i + 1], completions[i:i + 1], {k: v[i:i + 1] for k, v in columns.items()})
            except Exception:
                where = f" on {row_named(i)}"
                break
        raise error(f"reward {source.name} raised {type(raised).__name__}: {raised}{where} {when}") from None
    try:
        scores = list(scores)
    except TypeError:
        raise error(f"reward {source.name} returned {type(scores).__name__}, not a list of scores {when}") from None
    if len(scores) != len(prompts):
        raise error(f"reward {source.name} returned {len(scores)} scores for {len(prompts)} rows {when}")
    out = []
    for i, score in enumerate(scores):
        if score is None:
            out.append(None)
            continue
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise error(f"reward {source.name} returned {score!r} for {row_named(i)} {when}: not a number") from None
        if not math.isfinite(value):
            raise error(f"reward {source.name} returned {value} for {row_named(i)} {when}")
        out.append(value)
    return out


def weighted_sum(per_source: list[list], weights: list[float]) -> list[float]:
    """Rows scored by several rewards, weighted and summed as TRL does (a None adds nothing)."""
    return [sum(w * s for w, s in zip(weights, row) if s is not None) for row in zip(*per_source)]


def check_names(specs: list[str], weights: list[float], flag: str = "--reward") -> None:
    if weights and len(weights) != len(specs):
        raise ConfigError(f"--reward-weights: {len(weights)} weights for {len(specs)} rewards ({', '.join(specs)})")
    if len(set(specs)) != len(specs):
        raise ConfigError(f"{flag}: a reward is named twice ({', '.join(specs)})")
