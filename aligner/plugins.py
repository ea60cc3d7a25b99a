"""Loads plugins through the `aligner` entry-point group: built-ins and third-party plugins alike.

pluggy's own `load_setuptools_entrypoints` stops at the first plugin that fails to import; aligner loads each
entry point itself so that one broken plugin is reported (warning + `aligner plugins`) while the rest still work.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
import warnings
from dataclasses import dataclass, field
from functools import lru_cache

import pluggy

from aligner import hookspecs
from aligner.registry import Registry, RegistryError

ENTRY_POINT_GROUP = "aligner"
ALLOW_LIST_ENV = "ALIGNER_LOAD_PLUGINS"
TRACE_ENV = "ALIGNER_TRACE_PLUGINS"
HOOKS = {"register_algorithms": "algorithm", "register_reward_functions": "reward function"}


@dataclass
class PluginInfo:
    name: str
    module: str
    distribution: str | None
    version: str | None
    algorithms: list[str] = field(default_factory=list)
    reward_functions: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class LoadedPlugins:
    manager: pluggy.PluginManager
    registry: Registry
    plugins: dict[str, PluginInfo]


def _allowed(env_value: str | None, ep: importlib.metadata.EntryPoint) -> bool:
    if env_value is None:
        return True
    names = {n.strip() for n in env_value.split(",") if n.strip()}
    dist = ep.dist.name if ep.dist else None
    return ep.name in names or (dist is not None and dist in names)


def _fail(info: PluginInfo, what: str, error: BaseException | str) -> None:
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    message = f"{what}: {text}"
    info.errors.append(message)
    warnings.warn(f"aligner plugin {info.name!r} ({info.module}) {message}", stacklevel=3)


def load(entry_points=None) -> LoadedPlugins:
    """Loads every allowed entry point of the `aligner` group and collects what each registers."""
    manager = pluggy.PluginManager("aligner")
    manager.add_hookspecs(hookspecs)
    if entry_points is None:
        entry_points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    allow = os.environ.get(ALLOW_LIST_ENV)
    plugins: dict[str, PluginInfo] = {}
    for ep in sorted(entry_points, key=lambda e: e.name):
        if not _allowed(allow, ep):
            continue
        info = PluginInfo(ep.name, ep.value, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None)
        if ep.name in plugins:
            _fail(info, "was not loaded", f"a plugin named {ep.name!r} is already loaded from {plugins[ep.name].module}")
            plugins[f"{ep.name} ({ep.value})"] = info
            continue
        plugins[ep.name] = info
        try:
            module = ep.load()
        except Exception as error:
            _fail(info, "failed to import", error)
            continue
        manager.register(module, name=ep.name)
        try:
            manager.check_pending()
        except pluggy.PluginValidationError as error:
            manager.unregister(name=ep.name)
            _fail(info, "implements an unknown hook (misspelled?)", error)
    registry = Registry()
    trace = os.environ.get(TRACE_ENV)
    for hook_name, kind in HOOKS.items():
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            info = plugins[impl.plugin_name]
            if trace:
                print(f"aligner: calling {hook_name} of plugin {impl.plugin_name!r}", file=sys.stderr)

            def register(item, _kind=kind, _info=info):
                registry.add(_kind, item, _info.name)
                (_info.algorithms if _kind == "algorithm" else _info.reward_functions).append(item.name)

            try:
                impl.function(register=register)
            except RegistryError as error:
                _fail(info, f"{hook_name} was rejected", str(error))
            except Exception as error:
                _fail(info, f"raised in {hook_name}", error)
    return LoadedPlugins(manager, registry, plugins)


@lru_cache(maxsize=1)
def default() -> LoadedPlugins:
    """The plugins of this process, loaded once."""
    return load()
