"""The layout's promises, read from the source: the core never imports a plugin, plugins use only the public API,
every plugin has the one shape, the public API is what `aligner` and `aligner.api` both offer with every name
defined under its public name, and docs/layout.md describes the tree as it is."""

from __future__ import annotations

import ast
from pathlib import Path

import re
import tomllib
import warnings

import pytest

import aligner
from aligner import api

from conftest import REPO

PUBLIC_MODULES = {"aligner", "aligner.api"}


def python_files(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


PURE_QUANTITIES = {node.name for node in ast.parse((REPO / "aligner" / "online" / "quantities.py").read_text()).body
                   if isinstance(node, (ast.FunctionDef, ast.ClassDef))}
"""What a plugin's pure loss.py or advantages.py may take from aligner.api: the shared online quantities, which
are tensors in, tensors out themselves."""


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, [], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module, [alias.name for alias in node.names], node.lineno))
    return found


def entry_points() -> dict[str, str]:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]["aligner"]


def plugin_packages() -> set[str]:
    """Every built-in plugin, as `pyproject.toml`'s entry points name them (the toy world's hooks live in the core)."""
    return {value for value in entry_points().values() if not value.startswith("aligner.")}


SHAPE = {"__init__.py", "config.py", "train.py", "loss.py", "advantages.py"}
"""The files a plugin may have: the hook, the settings, the training, pure tensor functions."""
CRITIC = {"aligner_ppo": {"critic.py"}}
"""A method with a critic brings it to the online engine in critic.py."""
TRAINS_NOTHING = {"aligner_base"}


def test_the_core_imports_no_plugin():
    plugins = plugin_packages()
    offenders = [f"{path.relative_to(REPO)}:{line} imports {module}"
                 for path in python_files("aligner") for module, _, line in imports(path)
                 if module.split(".")[0] in plugins]
    assert len(plugins) == 11
    assert offenders == []


def test_plugins_import_only_the_public_api():
    offenders = []
    assert {p.name for p in (REPO / "plugins").iterdir() if (p / "__init__.py").is_file()} == plugin_packages()
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
    from aligner import plugins

    values = entry_points().values()
    assert all(not value.startswith("aligner.") or value == "aligner.toy.hooks" for value in values)
    registry = plugins.default().registry
    owners = {registry.owners["algorithm", name] for name in registry.algorithms}
    assert {name for name, value in entry_points().items() if value in plugin_packages()} <= owners


@pytest.mark.parametrize("package", sorted(plugin_packages()))
def test_every_plugin_has_the_one_shape(package):
    """peft's tuners' habit: know one plugin, know all. The hook alone in __init__.py, settings in config.py,
    training in train.py named as "module:function", pure functions in loss.py / advantages.py."""
    folder = REPO / "plugins" / package
    files = {p.name for p in folder.glob("*.py")}
    assert files <= SHAPE | CRITIC.get(package, set()), files
    assert "config.py" in files
    assert ("train.py" in files) != (package in TRAINS_NOTHING)
    tree = ast.parse((folder / "__init__.py").read_text())
    defined = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Assign))]
    assert [node.name for node in defined if isinstance(node, ast.FunctionDef)] == ["register_algorithms"]
    assert all(isinstance(node, ast.FunctionDef) for node in defined), "the hook only: no settings or code here"
    for pure in ("loss.py", "advantages.py"):  # tensors in, tensors out: no model, data or run harness
        if pure in files:
            found = imports(folder / pure)
            modules = {module.split(".")[0] for module, _, _ in found if module != "aligner.api"}
            assert modules <= {"__future__", "dataclasses", "math", "torch", package}, (pure, modules)
            from_api = {name for module, names, _ in found if module == "aligner.api" for name in names}
            assert from_api <= PURE_QUANTITIES, (pure, from_api - PURE_QUANTITIES)


def test_every_algorithm_names_its_training_lazily():
    """`aligner plugins` lists algorithms without importing their training code: train and check are
    "module:function" strings that resolve to functions of the plugin's train.py (the base's: of the public API)."""
    from aligner import plugins
    from aligner.registry import resolve

    registry = plugins.default().registry
    for name, algorithm in registry.algorithms.items():
        owner = registry.owners["algorithm", name]
        if owner not in plugin_packages():
            continue
        assert isinstance(algorithm.train, str), name
        assert algorithm.train.startswith((f"{owner}.train:", "aligner.api:")), algorithm.train
        assert callable(resolve(algorithm.train, name))
        if algorithm.check is not None:
            assert algorithm.check == f"{owner}.train:check"
            assert callable(resolve(algorithm.check, name))


def test_api_names_are_defined_under_their_public_names():
    """A grep for a public name finds its definition: api.py renames nothing on the way."""
    tree = ast.parse((REPO / "aligner" / "api.py").read_text())
    renamed = [f"{alias.name} as {alias.asname}" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               for alias in node.names if alias.asname]
    assert renamed == []
    for name in api.__all__:
        value = getattr(api, name)
        if callable(value) and hasattr(value, "__name__") and name != "hookimpl":
            assert value.__name__ == name, f"{name} is defined as {value.__name__}"


def test_deprecated_names_still_work_with_a_warning():
    for old, new in api.DEPRECATED.items():
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(api, old) is getattr(api, new)
        with pytest.warns(DeprecationWarning, match=new):
            assert getattr(aligner, old) is getattr(api, new)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert api.RewardSourceSettings is aligner.RewardSourceSettings


def test_layout_page_describes_every_module():
    """docs/layout.md is the one copy of the layout: every package and module of the core, every plugin and every
    test folder appears on it, and it names nothing that is not there."""
    page = (REPO / "docs" / "layout.md").read_text()
    tree = page[page.index("```"):page.rindex("```")]
    missing = []
    for path in sorted((REPO / "aligner").rglob("*.py")):
        if path.name in ("__init__.py", "__main__.py") and path.parent != REPO / "aligner":
            continue
        if path.name not in tree:
            missing.append(str(path.relative_to(REPO)))
    for folder in [*plugin_packages(), "unit", "algorithms", "integration", "multiprocess"]:
        if f"{folder}/" not in tree:
            missing.append(folder)
    assert missing == []
    named = set(re.findall(r"\b([a-z_]+\.py)\b", tree))
    existing = {p.name for p in REPO.glob("aligner/**/*.py")} | {p.name for p in REPO.glob("plugins/**/*.py")} | {
        p.name for p in REPO.glob("benchmarks/**/*.py")}
    assert named - existing - {"file.py"} == set()  # file.py:function, the reward form


def test_every_public_name_is_documented():
    """The API reference is generated from these docstrings; a name without one would be missing from it."""
    import inspect

    undocumented = [name for name in api.__all__ if (inspect.isfunction(getattr(api, name))
                                                      or inspect.isclass(getattr(api, name)))
                    and not (getattr(api, name).__doc__ or "").strip()]
    assert undocumented == []
    for name, module in (("hookimpl", "hookspecs"), ("REWARD_ADAPTER", "reward/model"),
                         ("CHECKPOINTS", "harness/rundir")):  # values: documented by an attribute docstring
        source = (REPO / "aligner" / f"{module}.py").read_text()
        assert re.search(rf'^{name} = .*\n"""', source, re.M), name


def test_listing_plugins_imports_no_training_stack():
    """`aligner plugins` and building the CLI import every plugin; they must not pay for torch/transformers/peft."""
    import subprocess
    import sys

    code = ("import sys; from aligner import plugins; plugins.load(); "
            "print(sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
