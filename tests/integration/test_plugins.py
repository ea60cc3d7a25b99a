import json
import os
import re
import subprocess
import sys

import pytest

from aligner import hookspecs, plugins
from aligner.registry import RegistryError
from conftest import EXAMPLE_PLUGIN, REPO

BAD = REPO / "tests" / "plugins" / "bad"


def test_builtins_are_entry_point_plugins():
    loaded = plugins.load()
    for name, algorithms in (("base", ["base"]), ("dpo", ["dpo"]), ("orpo", ["orpo"]), ("ppo", ["ppo"]),
                             ("reward", ["reward"]), ("grpo", ["grpo"]), ("rloo", ["rloo"]),
                             ("reinforce-pp", ["reinforce-pp"]), ("ipo", ["ipo"]), ("simpo", ["simpo"]),
                             ("kto", ["kto"])):
        info = loaded.plugins[name]
        assert info.distribution == "aligner", "built-ins must come through the installed entry-point group"
        assert info.algorithms == algorithms and not info.errors
    assert loaded.plugins["toy"].reward_functions == ["vader", "answer-match"]
    assert set(loaded.registry.algorithms) >= {"dpo", "orpo", "ppo", "reward"}


def test_third_party_plugin_is_discovered(install_plugin):
    install_plugin(EXAMPLE_PLUGIN)
    loaded = plugins.load()
    info = loaded.plugins["sft-chosen"]
    assert (info.distribution, info.version, info.errors) == ("aligner-example", "0.1.0", [])
    assert loaded.registry.algorithm("sft-chosen").config_class.__name__ == "SFTChosenSettings"


def test_duplicate_algorithm_names_both_plugins(install_plugin):
    install_plugin(BAD / "dup_dpo")
    with pytest.warns(UserWarning, match="another-dpo"):
        loaded = plugins.load()
    with pytest.raises(RegistryError, match=r"'dpo'.*'another-dpo'|'another-dpo'.*'dpo'") as error:
        loaded.registry.algorithm("dpo")
    assert "ambiguous" in str(error.value)
    errors = loaded.plugins["another-dpo"].errors + loaded.plugins["dpo"].errors
    assert len(errors) == 1 and "'dpo'" in errors[0] and "'another-dpo'" in errors[0]
    assert loaded.registry.algorithm("orpo").name == "orpo", "other plugins still work"


@pytest.mark.parametrize("project, plugin, pattern", [
    ("broken_import", "broken", "failed to import: ModuleNotFoundError"),
    ("raising_hook", "raising", "raised in register_algorithms: RuntimeError: registration exploded"),
    ("typo_hook", "typo", r"unknown hook \(misspelled\?\).*register_algorithm"),
])
def test_faulty_plugin_warns_and_others_load(install_plugin, project, plugin, pattern):
    install_plugin(BAD / project)
    with pytest.warns(UserWarning, match=f"aligner plugin '{plugin}'"):
        loaded = plugins.load()
    assert re.search(pattern, " ".join(loaded.plugins[plugin].errors), re.S)
    assert {"dpo", "orpo"} <= set(loaded.registry.algorithms)


def test_allow_list_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv(plugins.ALLOW_LIST_ENV, "orpo, toy")
    loaded = plugins.load()
    assert set(loaded.plugins) == {"orpo", "toy"}
    with pytest.raises(RegistryError, match="unknown algorithm 'dpo'; valid: orpo"):
        loaded.registry.algorithm("dpo")
    monkeypatch.setenv(plugins.ALLOW_LIST_ENV, "")
    assert plugins.load().plugins == {}


def test_trace_env_reports_hook_calls(monkeypatch, capsys):
    monkeypatch.setenv(plugins.TRACE_ENV, "1")
    plugins.load()
    assert "calling register_algorithms of plugin 'dpo'" in capsys.readouterr().err


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "aligner", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=120)


@pytest.mark.slow
def test_cli_plugins_json_shows_failures(install_plugin):
    install_plugin(BAD / "broken_import")
    install_plugin(EXAMPLE_PLUGIN)
    result = run_cli("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["dpo"]["algorithms"][0]["name"] == "dpo" and rows["dpo"]["algorithms"][0]["data"] == ["preference"]
    assert rows["grpo"]["algorithms"][0]["data"] == ["preference", "unpaired", "prompt"]
    assert rows["kto"]["algorithms"][0]["data"] == ["preference", "unpaired"]
    assert rows["sft-chosen"]["version"] == "0.1.0"
    assert "ModuleNotFoundError" in rows["broken"]["errors"][0]
    text = run_cli("plugins").stdout
    assert re.search(r"broken .*\n\s+ERROR\s+failed to import", text)


def test_every_hook_is_documented():
    page = (REPO / "docs" / "plugins.md").read_text()
    hooks = [name for name in dir(hookspecs) if name.startswith("register_")]
    assert hooks == sorted(plugins.HOOKS)
    for name in hooks:
        assert f"### `{name}(register)`" in page, f"docs/plugins.md has no reference entry for hook {name}"
