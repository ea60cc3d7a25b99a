"""Rewards and judges named on the command line (`--reward`, `--gold-reward`), resolved in one order: a registered
reward function's name, then `module:function` or `file.py:function` (a plain callable, no packaging), then a
sequence-classification reward model (a folder or hub id whose config is `*ForSequenceClassification` with one
label). `evaluate:<module folder or hub name>[#<key>]` names a Hugging Face `evaluate` module as the scorer; that
prefix is read before `module:function`.

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
import numbers
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
    kind: str                        # "registered", "callable", "evaluate" or "classifier"
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


EVALUATE_PREFIX = "evaluate:"


def _text(item) -> str:
    """A prompt or completion as plain text: a string as it is, a message list as its messages' text contents, one
    per line (a content given as parts keeps its text parts)."""
    if isinstance(item, str):
        return item
    lines = []
    for message in item:
        content = message.get("content", "") if isinstance(message, dict) else message
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content
                              if isinstance(part, dict) and part.get("type", "text") == "text")
        lines.append(str(content))
    return "\n".join(lines)


def _one_line(error: Exception) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200] if text else ''}"


REFERENCES = "?references="
"""`evaluate:<module>[#<key>]?references=<column>`: the module's references are that column of the rows."""


def _references_column(spec: str) -> tuple[str, str | None]:
    """The spec without its `?references=<column>` part, and the column (None: the prompts)."""
    head, found, column = spec.rpartition(REFERENCES)
    return (head, column) if found else (spec, None)


def _split_evaluate_spec(spec: str) -> tuple[str, str | None]:
    """`evaluate:<module>[#<key>][?references=<column>]` -> (module, key or None); the last '#' starts the key."""
    target, hashed, key = _references_column(spec)[0][len(EVALUATE_PREFIX):].rpartition("#")
    return (target, key) if hashed else (key, None)


def load_evaluate_module(spec: str, flag: str) -> tuple[object, str | None]:
    """`evaluate:<module>[#<key>]` -> (the loaded module, key or None). A local folder is loaded from where it is
    (never looked up on the hub); any other name is a hub module, which needs the network or evaluate's cache."""
    target, key = _split_evaluate_spec(spec)
    if not target:
        raise RewardError(f"{flag} {spec}: name an evaluate module: evaluate:<module folder or hub name>[#<key>]")
    if key == "":
        raise RewardError(f"{flag} {spec}: an empty key after '#'")
    local = Path(target).expanduser()
    if local.is_dir():
        if not (local / f"{local.name}.py").is_file():
            raise RewardError(f"{flag} {spec}: the folder {target} has no {local.name}.py; an evaluate module "
                              f"folder holds a script named as the folder")
        target = str(local.resolve())
    elif local.is_file():
        target = str(local.resolve())
    elif target.startswith((".", "/", "~")) or target.endswith(".py"):
        raise RewardError(f"{flag} {spec}: no such evaluate module {target}")
    try:
        import evaluate
    except ImportError as error:
        raise RewardError(f"{flag} {spec}: the evaluate package cannot be imported ({_one_line(error)}); "
                          f"pip install evaluate") from None
    try:
        module = evaluate.load(target, keep_in_memory=True)
    except Exception as error:
        from aligner.harness import storage

        found = storage.fault(error)
        if found is not None:
            raise storage.StorageCheckError(f"{flag} {spec}: evaluate copies the module into its modules cache "
                                            f"(HF_MODULES_CACHE), which cannot be written: {storage.describe(found)}"
                                            ) from None
        hint = "" if Path(target).is_absolute() else "; a hub name needs the network or evaluate's cached copy"
        raise RewardError(f"{flag} {spec}: could not load the evaluate module {target} ({_one_line(error)}){hint}"
                          ) from None
    columns = _feature_names(module.features)
    if "predictions" not in columns:
        raise RewardError(f"{flag} {spec}: the evaluate module takes no predictions (its inputs: "
                          f"{', '.join(columns) or 'none'}); a judge scores the responses as predictions")
    column = _references_column(spec)[1]
    if column is not None and (not column or "references" not in columns):
        raise RewardError(f"{flag} {spec}: " + ("name the column after ?references=" if not column else
                          f"the evaluate module takes no references (its inputs: {', '.join(columns)})"))
    return module, key


def _feature_names(features) -> list[str]:
    options = features if isinstance(features, list) else [features]
    return list(dict.fromkeys(name for option in options if option for name in option))


def evaluate_scorer(spec: str, module, key: str | None) -> Callable:
    """Scores with `module.compute(predictions=<responses>, references=<prompts, or the named column>)`
    (references only if the module takes them) and returns the list under `key`: one number per response."""
    takes_references = "references" in _feature_names(module.features)
    column = _references_column(spec)[1]
    target = _split_evaluate_spec(spec)[0]
    name = Path(target).name if Path(target).expanduser().exists() else target  # a module's own name is its class's

    def score(prompts: list, completions: list, **columns) -> list[float]:
        inputs = {"predictions": [_text(c) for c in completions]}
        if column is not None:
            if column not in columns:
                raise RewardError(f"evaluate module {name}: the rows have no column {column!r} for its references "
                                  f"(their columns: {', '.join(columns) or 'none besides the prompt'})")
            inputs["references"] = [_text(v) if isinstance(v, (str, list)) else v for v in columns[column]]
        elif takes_references:
            inputs["references"] = [_text(p) for p in prompts]
        result = module.compute(**inputs)
        if not isinstance(result, dict):
            raise RewardError(f"evaluate module {name} returned {type(result).__name__}, not a dict of "
                              f"outputs")
        lists = [k for k, v in result.items() if _is_list(v)]
        chosen = key
        if chosen is None:
            if len(lists) != 1:
                raise RewardError(f"evaluate module {name} returned "
                                  f"{len(lists) or 'no'} list-valued outputs ({', '.join(result) or 'none'}); "
                                  f"name the scores' key: {spec}#<key>")
            chosen = lists[0]
        elif chosen not in result:
            raise RewardError(f"evaluate module {name} returned no {chosen!r} (its outputs: "
                              f"{', '.join(result) or 'none'})")
        scores = result[chosen]
        if not _is_list(scores):
            raise RewardError(f"evaluate module {name}, key {chosen!r}: {type(scores).__name__}, not a list "
                              f"of one score per response")
        scores = list(scores)
        if len(scores) != len(completions):
            raise RewardError(f"evaluate module {name}, key {chosen!r}: {len(scores)} scores for "
                              f"{len(completions)} responses")
        for value in scores:
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise RewardError(f"evaluate module {name}, key {chosen!r}: {value!r} is not a number")
        return [float(value) for value in scores]

    return score


def _is_list(value) -> bool:
    return isinstance(value, (list, tuple)) or getattr(value, "ndim", None) == 1


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
    if spec.startswith(EVALUATE_PREFIX):
        module, key = load_evaluate_module(spec, flag)  # loaded in both modes: code, no weights
        return RewardSource(spec, "evaluate", evaluate_scorer(spec, module, key))
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
                      f"file.py:function, evaluate:<module>[#<key>], or a sequence-classification model folder or "
                      f"hub id")


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
