import dataclasses
import os
import subprocess
import sys

import pytest

from aligner import config, plugins
from aligner.cli import main


def dpo_settings():
    return plugins.default().registry.algorithm("dpo").config_class


def test_run_help_lists_flags_with_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "dpo", "--help"])
    assert exit_.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--beta FLOAT KL strength" in out and "(default: 0.1)" in out
    assert "--lora-target-modules STR [STR ...]" in out
    assert "--config FILE.yaml" in out


@pytest.mark.parametrize("argv, message", [
    (["run", "nope"], "invalid choice: 'nope' (choose from 'base', 'dpo', 'grpo', 'ipo', 'kto', 'orpo', 'ppo', "
                      "'reinforce-pp', 'reward', 'rloo', 'simpo'"),
    (["run", "dpo", "--bogus", "1"], "unrecognized arguments: --bogus"),
    (["run", "dpo", "--max-steps", "ten"], "--max-steps: invalid int value: 'ten'"),
    (["run", "dpo", "--device", "tpu"], "--device: invalid choice: 'tpu'"),
])
def test_bad_command_lines_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["run", "dpo", "--beta", "-1"], "--beta must be > 0, got -1.0"),
    (["run", "dpo", "--lora-dropout", "1.5"], "--lora-dropout must be in [0, 1)"),
    (["run", "orpo", "--learning-rate", "0"], "--learning-rate must be > 0"),
])
def test_invalid_values_exit_2_naming_the_flag(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_yaml_then_flags(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("beta: 0.3\nmax-steps: 7\nlearning_rate: 1e-4\nlora_target_modules: q_proj\n")
    values = config.read_yaml(path, dpo_settings())
    cfg = config.build(dpo_settings(), values, {"max_steps": 9})
    assert (cfg.beta, cfg.max_steps, cfg.learning_rate, cfg.lora_target_modules) == (0.3, 9, 1e-4, ["q_proj"])
    assert cfg.batch_size == 16, "untouched settings keep their defaults"


@pytest.mark.parametrize("text, message", [
    ("betta: 0.3\n", "unknown setting 'betta'"),
    ("beta: fast\n", "beta must be float, got 'fast'"),
    ("max_steps: 1.5\n", "max_steps must be int, got 1.5"),
    ("overwrite: 1\n", "overwrite must be bool"),
    ("- a\n- b\n", "expected a mapping"),
    ("beta: [\n", "not valid YAML"),
])
def test_bad_yaml_exits_2_naming_file_and_key(tmp_path, capsys, text, message):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    assert main(["run", "dpo", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


def test_missing_config_file(capsys):
    assert main(["run", "dpo", "--config", "/nonexistent.yaml"]) == 2
    assert "--config /nonexistent.yaml: no such file" in capsys.readouterr().err


def test_output_dir_is_not_overwritten(tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("precious")
    assert main(["run", "dpo", "--output-dir", str(tmp_path)]) == 2
    assert "not empty; pass --overwrite" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "precious"


def test_every_setting_has_help():
    for algo in plugins.default().registry.algorithms.values():
        for f in dataclasses.fields(algo.config_class):
            assert f.metadata.get("help"), f"{algo.name}.{f.name} has no help text"


@pytest.mark.slow
def test_console_script_is_installed():
    result = subprocess.run(["aligner", "run", "--help"], capture_output=True, text=True,
                            env={**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]})
    assert result.returncode == 0 and "dpo" in result.stdout and "orpo" in result.stdout


def test_missing_tracker_is_a_config_error(capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert main(["run", "dpo", "--report-to", "wandb"]) == 2
    assert "--report-to wandb: the wandb package is not installed" in capsys.readouterr().err
