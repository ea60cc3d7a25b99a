"""What plugins contribute, and the lookup tables the rest of aligner reads them from."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from aligner.errors import RegistryError


@dataclass(frozen=True)
class Algorithm:
    """A training algorithm.

    `train(context)` receives an `aligner.TrainContext` (base model, tokenizer, data, config, metrics sink) and
    returns the trained `peft.PeftModel` with its policy adapter active; the runner evaluates and saves it, so
    every algorithm is measured by the same code.

    `train` and `check` are callables, or `"module:function"` strings imported only when the run calls them, so
    that listing plugins (`aligner plugins`, the CLI's flags) imports no torch, TRL or peft.
    """

    name: str
    description: str
    config_class: type
    train: Callable[[Any], Any] | str
    trains_policy: bool = True
    """False for algorithms that train something other than a policy (a reward model): the runner then skips
    the policy evaluation and `train` returns None."""
    check: Callable[[Any, "Registry"], None] | str | None = None
    """`check(config, registry)`, called before any data or weights load: refuse settings that name unusable
    files (a checkpoint to resume, a reward model) here, so a mistake costs seconds, not a base evaluation."""
    accepts: tuple[str, ...] = ("preference",)
    """The data layouts `train` can use (`aligner.api.PREFERENCE`, `UNPAIRED`, `PROMPT`; `LAYOUTS` for all): rows in
    another layout are refused before anything loads. An online method that reads only prompts takes them all."""

    def __post_init__(self) -> None:
        for role in ("train", "check"):
            value = getattr(self, role)
            if isinstance(value, str) and not _is_reference(value):
                raise RegistryError(f"algorithm {self.name!r}: {role}={value!r} is not a 'module:function' reference")
            if value is not None and not isinstance(value, str) and not callable(value):
                raise RegistryError(f"algorithm {self.name!r}: {role} must be a callable or a 'module:function' "
                                    f"string, not {type(value).__name__}")

    def run_train(self, context):
        """Calls `train(context)`, importing it first when it is given as "module:function"."""
        return resolve(self.train, f"algorithm {self.name!r} train")(context)

    def run_check(self, config, registry: "Registry") -> None:
        """Calls `check(config, registry)` when the algorithm has one."""
        if self.check is not None:
            resolve(self.check, f"algorithm {self.name!r} check")(config, registry)


def _is_reference(value: str) -> bool:
    module, sep, function = value.partition(":")
    return bool(sep) and all(part.isidentifier() for part in module.split(".")) and function.isidentifier()


def resolve(target: Callable | str, what: str) -> Callable:
    """`target` itself, or the function a "module:function" string names, imported now."""
    if not isinstance(target, str):
        return target
    module_name, _, function = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function)
    except AttributeError:
        raise RegistryError(f"{what}: module {module_name!r} has no function {function!r}") from None


@dataclass(frozen=True)
class RewardFunction:
    """Scores responses, higher is better, called as TRL calls its reward functions:
    `score(prompts=[...], completions=[...], **columns) -> list[float | None]`, the prompts and completions as the data
    has them (strings, or message lists) and each other column of the rows as a keyword list; None for a row the
    function does not score. A function taking neither `completions` nor `**kwargs` is called
    `score(prompts, completions)`."""

    name: str
    description: str
    score: Callable[[list[str], list[str]], list[float]]


@dataclass
class Registry:
    algorithms: dict[str, Algorithm] = field(default_factory=dict)
    reward_functions: dict[str, RewardFunction] = field(default_factory=dict)
    owners: dict[tuple[str, str], str] = field(default_factory=dict)
    """(kind, name) -> the plugin that registered it."""
    conflicts: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """(kind, name) -> every plugin that claimed it, when more than one did."""

    def add(self, kind: str, item, plugin: str) -> None:
        from aligner.harness.rundir import is_safe_name

        if not is_safe_name(item.name):
            # an algorithm's name becomes part of its default run directory, runs/<name>-<time>
            raise RegistryError(f"{kind} name {item.name!r} from plugin {plugin!r} is not allowed: use letters, "
                                f"digits, '.', '_', '+' and '-' (no path separators, at most 100 characters)")
        table = self._table(kind)
        key = (kind, item.name)
        if item.name in table or key in self.conflicts:
            owners = self.conflicts.setdefault(key, [self.owners[key]])
            owners.append(plugin)
            table.pop(item.name, None)
            raise RegistryError(
                f"{kind} {item.name!r} is registered by more than one plugin: {', '.join(map(repr, owners))}; "
                f"uninstall one, or load only one with ALIGNER_LOAD_PLUGINS"
            )
        table[item.name] = item
        self.owners[key] = plugin

    def algorithm(self, name: str) -> Algorithm:
        return self._get("algorithm", name)

    def reward_function(self, name: str) -> RewardFunction:
        return self._get("reward function", name)

    def _table(self, kind: str) -> dict:
        return self.algorithms if kind == "algorithm" else self.reward_functions

    def _get(self, kind: str, name: str):
        if (kind, name) in self.conflicts:
            raise RegistryError(
                f"{kind} {name!r} is ambiguous: registered by plugins {', '.join(map(repr, self.conflicts[kind, name]))}"
            )
        table = self._table(kind)
        if name not in table:
            valid = ", ".join(sorted(table)) or "none installed"
            raise RegistryError(f"unknown {kind} {name!r}; valid: {valid}")
        return table[name]
