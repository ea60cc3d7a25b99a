"""The layout's promises, read from the source: the core never imports a plugin, plugins use only the public API,
and the public API is what `aligner` and `aligner.api` both offer."""

from __future__ import annotations

import ast
from pathlib import Path

import aligner
from aligner import api
from conftest import REPO

PUBLIC_MODULES = {"aligner", "aligner.api"}


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def plugin_packages() -> set[str]:
    return {p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").is_file()}


def test_the_core_imports_no_plugin():
    plugins = plugin_packages()
    offenders = [f"{path.relative_to(REPO)}:{line} imports {module}"
                 for path in python_files("aligner") for module, _, line in imports(path)
                 if module.split(".")[0] in plugins]
    assert plugins >= {"aligner_base", "aligner_dpo", "aligner_orpo", "aligner_ppo", "aligner_reward"}
    assert offenders == []


def test_plugins_import_only_the_public_api():
    offenders = []
    for path in python_files("plugins", "tests/plugins/aligner-example"):
        for module, names, line in imports(path):
            if module.split(".")[0] != "aligner":
                continue
            where = f"{path.relative_to(REPO)}:{line}"
            if module not in PUBLIC_MODULES:
                offenders.append(f"{where} imports the private module {module}")
            for name in names:
                if name not in api.__all__:
                    offenders.append(f"{where} imports {name!r}, which aligner.api does not export")
    assert offenders == []


def test_plugins_do_not_reach_into_each_other():
    plugins = plugin_packages()
    offenders = []
    for package in plugins:
        for path in python_files(f"plugins/{package}"):
            offenders += [f"{path.relative_to(REPO)}:{line} imports {module}" for module, _, line in imports(path)
                          if module.split(".")[0] in plugins - {package}]
    assert offenders == []


def test_every_api_name_is_importable_from_aligner():
    assert aligner._api_names() == set(api.__all__)
    for name in api.__all__:
        assert getattr(aligner, name) is getattr(api, name), name


def test_every_built_in_algorithm_comes_through_an_entry_point():
    import tomllib

    entry_points = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["aligner"]
    assert set(entry_points.values()) >= {"aligner_base", "aligner_dpo", "aligner_orpo", "aligner_ppo",
                                           "aligner_reward"}
    assert all(not value.startswith("aligner.") or value == "aligner.toy.hooks" for value in entry_points.values())


def test_every_public_name_is_documented():
    """The API reference is generated from these docstrings; a name without one would be missing from it."""
    import inspect

    undocumented = [name for name in api.__all__ if (inspect.isfunction(getattr(api, name))
                                                      or inspect.isclass(getattr(api, name)))
                    and not (getattr(api, name).__doc__ or "").strip()]
    assert undocumented == []
    source = (REPO / "aligner" / "api.py").read_text()
    for name in ("hookimpl", "REWARD_ADAPTER", "CHECKPOINTS"):  # values: documented by an attribute docstring
        assert f'{name} = {name}\n"""' in source, name



def test_listing_plugins_imports_no_training_stack():
    """`aligner plugins` and building the CLI import every plugin; they must not pay for torch/transformers/peft."""
    import subprocess
    import sys

    code = ("import sys; from aligner import plugins; plugins.load(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
