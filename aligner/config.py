"""Run settings as dataclasses: one place that the CLI flags, `--config` YAML files, help text and `config.yaml`
are all generated from (the TRL convention of `metadata={"help": ...}`)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from aligner.errors import ConfigError


def setting(default: Any, help: str, choices: tuple | None = None):
    """A config field with its help text (and allowed values), mutable defaults handled."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class RunConfig:
    """Settings every algorithm shares: what to train, where to write, LoRA shape, and how to evaluate."""

    model: str = setting("aligner-toy", "Base model: a Hugging Face hub id, a local directory, or aligner-toy "
                                        "(the embedded offline default).")
    dataset: str = setting("aligner-toy", "Training data: a hub id, a local .jsonl/.json/.parquet/.csv file, a "
                                          "dataset folder (a cloned hub dataset repository or a save_to_disk "
                                          "folder), aligner-toy (preference pairs) or aligner-toy-verdicts "
                                          "(prompts with answers). Layouts: docs/data.md.")
    dataset_config: str | None = setting(None, "The dataset's config (subset), for datasets that have several.")
    dataset_split: str | None = setting(None, "The split to train on. Default: train; else the one split whose name "
                                              "starts with train; else the only split.")
    columns: str | None = setting(None, "Map other column names to aligner's, e.g. prompt=question,chosen=response_j,"
                                        "rejected=response_k.")
    max_samples: int | None = setting(None, "Train on this many rows, drawn at random with --seed (before the "
                                            "held-out prompts are split off). Default: every row.")
    eval_dataset: str | None = setting(None, "Held-out prompts: a file, folder or hub id with a prompt column (its "
                                             "other columns go to the judge). Default: the toy world's, --eval-split, "
                                             "or prompts split off --dataset.")
    eval_split: str | None = setting(None, "Take held-out prompts from this split of --eval-dataset, or of --dataset "
                                           "when no --eval-dataset is given (e.g. test_prefs).")
    eval_prompts: int = setting(256, "How many held-out prompts to evaluate gold reward and KL on.")
    gold_reward: str = setting("vader", "The judge of evaluation: a registered reward function, module:function, "
                                        "file.py:function, or a sequence-classification reward model (folder or hub "
                                        "id).")
    trust_remote_code: bool = setting(False, "Allow reward and judge models whose code lives in their repository.")
    eval_max_new_tokens: int = setting(20, "Response length cap when sampling for evaluation.")
    eval_temperature: float = setting(1.0, "Sampling temperature for evaluation (also used in its KL estimate).")
    eval_points: int = setting(1, "Evaluate the policy this many times over training, at evenly spaced steps, the "
                                  "last at the end (evaluations.jsonl): a curve of gold reward against KL. Each "
                                  "point costs one evaluation's time, reported apart from training time.")
    diversity_prompts: int = setting(16, "At the evaluation of the base and of the final policy, sample this many "
                                         "held-out prompts --diversity-samples times each, for the similarity of "
                                         "one prompt's responses (0: none).")
    diversity_samples: int = setting(4, "Responses per prompt for --diversity-prompts.")
    output_dir: str | None = setting(None, "Run directory. Default: runs/<algorithm>-<timestamp>.")
    overwrite: bool = setting(False, "Replace a non-empty output directory.")
    seed: int = setting(0, "Random seed for training and evaluation sampling.")
    learning_rate: float = setting(5e-4, "Optimizer learning rate.")
    max_steps: int = setting(60, "Optimizer steps to train for.")
    batch_size: int = setting(16, "Examples per optimizer step.")
    lora_r: int = setting(16, "LoRA rank.")
    lora_alpha: int = setting(32, "LoRA scaling numerator (scale = alpha / r).")
    lora_dropout: float = setting(0.0, "Dropout on the LoRA input.")
    lora_target_modules: list[str] = setting(["all-linear"], "Modules to adapt (peft names); all-linear adapts "
                                                              "every linear layer but the output head.")
    max_length: int = setting(64, "Longest prompt+response in tokens during training; longer ones are truncated. "
                                  "Evaluation prompts are cut to their last max-length tokens.")
    device: str = setting("auto", "auto picks CUDA (bf16 where supported) when available, else CPU float32.",
                          choices=("auto", "cpu", "cuda"))
    report_to: str = setting("none", "Also send metrics to a tracker (trackio: local-first, pip install "
                                     "'aligner[trackio]').", choices=("none", "tensorboard", "wandb", "trackio"))
    tracker_project: str = setting("aligner", "The project wandb and trackio group a run's metrics under; "
                                              "`aligner bench` sets it to the suite's name.")
    gradient_checkpointing: bool = setting(False, "Recompute each decoder layer's activations in the backward pass "
                                                  "instead of keeping them: less memory, about a third more "
                                                  "compute per update.")
    tensor_memory: str = setting("auto", "Count the peak memory of live tensors (peak_tensor_mb): on, off, or auto: "
                                         "on CUDA (free there), and on CPU for bases of 100M parameters or more. "
                                         "On CPU every operator is counted, which slows small models, whose time goes "
                                         "to per-operator overhead (docs/performance.md has the cost).",
                                 choices=("auto", "on", "off"))

    def variant(self) -> str | None:
        """A short label for a variant of the algorithm (PPO's critic mode), shown beside its name."""
        return None

    def require(self, names: list[str], minimum: float = 0, inclusive: bool = False) -> None:
        """Each named setting must be > minimum (>= with `inclusive`); the error names the flag."""
        for name in names:
            value = getattr(self, name)
            if value < minimum or (value == minimum and not inclusive):
                relation = ">=" if inclusive else ">"
                raise ConfigError(f"--{flag(name)} must be {relation} {minimum}, got {value!r}")

    def require_finite(self) -> None:
        """Every float setting is a finite number: NaN passes every `<` and `==` check, so it must be refused before
        any range check reads it (YAML spells it `.nan`, the command line `nan`)."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            values = value if isinstance(value, list) else [value]
            for item in values:
                if isinstance(item, float) and not math.isfinite(item):
                    raise ConfigError(f"--{flag(f.name)} must be a finite number, got {item!r}")

    def __post_init__(self) -> None:
        for name, (_, is_list, _) in field_types(type(self)).items():
            if is_list and isinstance(getattr(self, name), str):  # reward="gold" from Python, as YAML allows
                setattr(self, name, [getattr(self, name)])
        self.require_finite()
        if self.max_samples is not None:
            self.require(["max_samples"])
        self.require(["eval_prompts", "eval_max_new_tokens", "eval_temperature", "learning_rate", "max_steps",
                      "batch_size", "lora_r", "lora_alpha", "max_length", "eval_points"])
        self.require(["diversity_prompts"], inclusive=True)
        self.require(["diversity_samples"], minimum=2, inclusive=True)
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"--lora-dropout must be in [0, 1), got {self.lora_dropout!r}")
        if not self.lora_target_modules:
            raise ConfigError("--lora-target-modules must name at least one module")
        tracker_modules = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",)}
        if self.report_to in tracker_modules and not any(map(importlib.util.find_spec, tracker_modules[self.report_to])):
            raise ConfigError(f"--report-to {self.report_to}: the {self.report_to} package is not installed "
                              f"(pip install {self.report_to})")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise ConfigError(f"--{flag(f.name)} must be one of {', '.join(choices)}; got {getattr(self, f.name)!r}")


@dataclasses.dataclass
class CheckpointSettings(RunConfig):
    """What every loop that checkpoints reads (the online and offline engines, PPO): how often to write a
    checkpoint, which one to continue from, and whether changed settings may continue it."""

    save_every: int = setting(10, "Write a checkpoint every this many steps or iterations (and at the end).")
    save_limit: int = setting(3, "Keep the last N checkpoints (an older one is removed once a newer one is "
                                 "complete; the best evaluation point's is always kept); 0 keeps every one.")
    resume: str | None = setting(None, "Continue from a checkpoint directory, or a (partial) run directory's "
                                       "latest checkpoint.")
    allow_changed_settings: bool = setting(False, "With --resume: continue even though settings other than "
                                                  "--max-steps and --save-every differ from the checkpointed run's.")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.require(["save_every"])
        self.require(["save_limit"], inclusive=True)


def flag(name: str) -> str:
    return name.replace("_", "-")


def _base_type(annotation) -> tuple[type, bool, bool]:
    """(scalar type, is_list, is_optional) for the annotations configs use."""
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional, annotation = True, args[0]
        origin = typing.get_origin(annotation)
    if origin is list:
        return typing.get_args(annotation)[0], True, optional
    return annotation, False, optional


def field_types(config_class) -> dict[str, tuple[type, bool, bool]]:
    hints = typing.get_type_hints(config_class)
    return {f.name: _base_type(hints[f.name]) for f in dataclasses.fields(config_class)}


def coerce(config_class, name: str, value: Any, source: str) -> Any:
    """Checks a value read from YAML against the field's type; ints are accepted where floats are expected."""
    scalar, is_list, optional = field_types(config_class)[name]
    if value is None and optional:
        return None
    if is_list:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {name} must be a list of {scalar.__name__}, got {value!r}")
        return [coerce_scalar(scalar, v, f"{source}: {name}") for v in value]
    return coerce_scalar(scalar, value, f"{source}: {name}")


def coerce_scalar(scalar: type, value: Any, where: str) -> Any:
    if scalar is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if scalar is float and isinstance(value, str):
        try:
            return float(value)  # YAML reads 1e-4 as a string
        except ValueError:
            pass
    if not isinstance(value, scalar) or (scalar is int and isinstance(value, bool)):
        raise ConfigError(f"{where} must be {scalar.__name__}, got {value!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """One flag per field, defaults suppressed so the caller can tell given flags from defaults."""
    types_ = field_types(config_class)
    for f in dataclasses.fields(config_class):
        scalar, is_list, _ = types_[f.name]
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                                  "help": f"{f.metadata.get('help', '')} (default: {default})"}
        if f.metadata.get("choices"):
            kwargs["choices"] = f.metadata["choices"]
        if scalar is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = scalar
            kwargs["metavar"] = "{" + ",".join(map(str, f.metadata["choices"])) + "}" if f.metadata.get("choices") \
                else scalar.__name__.upper()
            if is_list:  # --reward a --reward b and --reward a b alike
                kwargs["nargs"] = "+"
                kwargs["action"] = "extend"
        parser.add_argument(f"--{flag(f.name)}", **kwargs)


def read_yaml(path: str | Path, config_class) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"--config {path}: not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"--config {path}: expected a mapping of setting: value, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(config_class)}
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in names:
            raise ConfigError(f"--config {path}: unknown setting {key!r}; valid: {', '.join(sorted(names))}")
        out[name] = coerce(config_class, name, value, f"--config {path}")
    return out


def build(config_class, file_values: dict | None = None, overrides: dict | None = None):
    """File values first, explicit flags/keyword overrides on top; the dataclass validates the result."""
    values = {**(file_values or {}), **(overrides or {})}
    names = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown setting(s) {', '.join(unknown)} for {config_class.__name__}")
    return config_class(**values)


def to_dict(config) -> dict:
    """Every setting of `config` as a plain dict (what `config.yaml` holds)."""
    return dataclasses.asdict(config)


RESULT_NEUTRAL = frozenset({"output_dir", "overwrite", "resume", "allow_changed_settings", "report_to", "tracker_project",
                            "tensor_memory", "save_limit"})
"""Settings that say where a run writes, what it continues from or what it reports, not what it computes."""


def settings_fingerprint(config) -> str:
    """A short hash of every setting that can change a run's result (all but RESULT_NEUTRAL). Stored in each run's
    summary.json and checkpoints, so a benchmark re-run or a `--resume` can tell that settings changed."""
    return fingerprint_values(to_dict(config))


def fingerprint_values(values: dict) -> str:
    """`fingerprint` of a run's settings as a dict (every field of its config)."""
    import hashlib
    import json

    kept = {k: v for k, v in values.items() if k not in RESULT_NEUTRAL}
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:16]


def changed_settings(before: dict, after: dict, ignore=frozenset()) -> list[str]:
    """`name: old -> new` for each setting that differs between two settings dicts (missing keys count)."""
    names = sorted((set(before) | set(after)) - RESULT_NEUTRAL - set(ignore))
    missing = object()
    out = []
    for name in names:
        old, new = before.get(name, missing), after.get(name, missing)
        if old != new:
            show = lambda v: "(unset)" if v is missing else repr(v)  # noqa: E731
            out.append(f"{name}: {show(old)} -> {show(new)}")
    return out
