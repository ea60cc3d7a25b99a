"""The benchmark runner: suite validation, the smoke suite end to end, resume, failures, third-party plugins."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml

from aligner import plugins
from aligner.bench import suite as suite_mod
from aligner.bench.results import RECORD_COLUMNS
from aligner.bench.run import run_bench
from aligner.cli import main
from aligner.config import settings_fingerprint

from conftest import EXAMPLE_PLUGIN

TINY = {"eval_prompts": 4, "eval_max_new_tokens": 6}


def write_suite(tmp_path, data) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("data, message", [
    ({"runs": [{"algorithm": "nope"}]}, r"runs\[1\] \(nope\): unknown algorithm 'nope'; valid: base, dpo"),
    ({"runs": [{"algorithm": "dpo"}], "colour": 1}, r"unknown key\(s\) colour"),
    ({"runs": [{"algorithm": "dpo", "setings": {}}]}, r"runs\[1\]: unknown key\(s\) setings"),
    ({"runs": [{"algorithm": "dpo", "settings": {"betta": 1}}]}, r"runs\[1\] \(dpo\): unknown setting 'betta'"),
    ({"runs": [{"algorithm": "dpo", "settings": {"beta": "high"}}]}, "beta must be float, got 'high'"),
    ({"runs": [{"algorithm": "dpo", "settings": {"beta": -1.0}}]}, "--beta must be > 0"),
    ({"runs": [{"algorithm": "dpo", "settings": {"seed": 3}}]}, "'seed' is managed by the bench"),
    ({"runs": [{"algorithm": "dpo"}, {"algorithm": "dpo"}]}, "duplicate run name 'dpo'"),
    ({"runs": [{"algorithm": "reward"}]}, "trains no policy"),
    ({"runs": [{"algorithm": "dpo", "sweep": {"beta": 0.1}}]}, "sweep must map setting names to non-empty lists"),
    ({"seeds": "zero", "runs": [{"algorithm": "dpo"}]}, "seeds must be a non-empty list of integers"),
    ({"runs": []}, "runs must be a non-empty list"),
    ({"common": {"max_stepz": 3}, "runs": [{"algorithm": "dpo"}]}, r"common: unknown setting 'max_stepz'"),
])
def test_bad_suites_fail_before_training_naming_the_entry(tmp_path, data, message):
    path = write_suite(tmp_path, data)
    with pytest.raises(suite_mod.SuiteError, match=message):
        suite_mod.load(path, plugins.default().registry)


def test_runs_must_share_base_data_and_evaluation(tmp_path, capsys):
    path = write_suite(tmp_path, {"runs": [{"algorithm": "dpo"},
                                           {"name": "b", "algorithm": "orpo", "settings": {"eval_prompts": 9}}]})
    assert main(["bench", path, "--output-dir", str(tmp_path / "out")]) == 2
    assert "eval_prompts differs between runs" in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()


def test_sweeps_and_seeds_expand(tmp_path):
    path = write_suite(tmp_path, {"seeds": [0, 1], "runs": [
        {"name": "d", "algorithm": "dpo", "sweep": {"beta": [0.1, 0.5]}},
        {"name": "o", "algorithm": "orpo", "seeds": [7]}]})
    suite = suite_mod.load(path, plugins.default().registry)
    assert [s.id for s in suite.runs] == ["d-beta0.1-seed0", "d-beta0.1-seed1", "d-beta0.5-seed0", "d-beta0.5-seed1",
                                          "o-seed7"]
    assert suite.runs[2].settings["beta"] == 0.5 and suite.runs[2].group == "d-beta0.5"
    # tensor memory is counted on each group's first seed only, unless the suite says otherwise
    assert [s.settings["tensor_memory"] for s in suite.runs] == ["on", "off", "on", "off", "on"]
    dpo = plugins.default().registry.algorithm("dpo").config_class
    assert settings_fingerprint(dpo(tensor_memory="on")) == settings_fingerprint(dpo(tensor_memory="off")), \
        "counting changes no result, so a finished run is not rerun for it"
    path = write_suite(tmp_path, {"seeds": [0, 1], "runs": [
        {"name": "d", "algorithm": "dpo", "settings": {"tensor_memory": "off"}}]})
    assert [s.settings["tensor_memory"] for s in suite_mod.load(path, plugins.default().registry).runs] == ["off"] * 2


METHODS = ("base", "ppo-shared", "ppo-separate", "grpo", "rloo", "reinforce-pp", "dpo", "ipo", "simpo", "kto", "orpo")


def test_builtin_suites_are_valid():
    registry = plugins.default().registry
    default = suite_mod.load("default", registry)
    algorithms = {s.algorithm for s in default.runs}
    assert algorithms == {"reward", "base", "ppo", "grpo", "rloo", "reinforce-pp", "dpo", "ipo", "simpo", "kto",
                          "orpo"}, "every built-in, the shared reward model included"
    for name in METHODS:
        assert len([s for s in default.runs if s.name == name]) >= 5, f"{name} needs 5 seeds"
    rewards = [s for s in default.runs if s.algorithm == "reward"]
    assert len(rewards) == 5, "one reward model per seed"
    assert {s.resolved["heldout_fraction"] for s in rewards} == {0.42}, "one held-out set of >= 500 pairs"
    for algorithm, key in (("ppo", "kl_coef"), ("grpo", "kl_coef"), ("rloo", "kl_coef"), ("reinforce-pp", "kl_coef"),
                           ("dpo", "beta"), ("ipo", "beta"), ("kto", "beta")):
        strengths = {s.resolved[key] for s in default.runs if s.algorithm == algorithm}
        assert len(strengths) >= 3, f"{algorithm} needs >= 3 KL strengths, has {strengths}"
    assert all(s.resolved["eval_points"] >= 4 for s in default.runs if s.algorithm != "reward")
    assert default.kl_budgets == (1.0, 2.0, 4.0, 8.0)
    quick = suite_mod.load("quick", registry)
    assert {s.name for s in quick.runs} == {*METHODS, "reward-model"}
    suite_mod.load("smoke", registry)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, toy_world):
    out = tmp_path_factory.mktemp("bench") / "smoke"
    outcome = run_bench("smoke", str(out), rerun=False, registry=plugins.default().registry, log=lambda m: None)
    return out, outcome


@pytest.mark.slow
def test_smoke_suite_writes_every_output(smoke):
    out, outcome = smoke
    assert outcome["failed"] == []
    for name in ("results.json", "results.csv", "results.md", "reward_vs_kl.png", "resources.png",
                 "reward_vs_compute.png", "frontier.png", "improvement.png", "suite.yaml"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == RECORD_COLUMNS
    assert {r["algorithm"] for r in rows} == {"reward", "base", "ppo", "grpo", "rloo", "reinforce-pp", "dpo", "ipo",
                                               "simpo", "kto", "orpo"}
    results = json.loads((out / "results.json").read_text())
    assert results["versions"]["torch"] and len(results["aggregates"]) == 12
    # one reward model, shared by every online run
    shared = str(out / "runs" / "reward-model-seed0" / "reward_model")
    for r in results["runs"]:
        if r["algorithm"] in ("ppo", "grpo", "rloo", "reinforce-pp"):
            config = yaml.safe_load((out / "runs" / r["id"] / "config.yaml").read_text())
            assert config["reward_model"] == shared, r["id"]
            assert r["generated_tokens"] > 0 and r["trained_tokens"] > 0
        elif r["algorithm"] not in ("base", "reward"):
            assert r["trained_tokens"] > 0 and r["compute"] == 3 * r["trained_tokens"], r["id"]
    base = next(r for r in results["runs"] if r["algorithm"] == "base")
    assert base["kl"] == 0.0 and base["win_rate"] == 0.5 and base["gold_reward"] == base["gold_reward_base"]
    ppo = [r for r in results["runs"] if r["algorithm"] == "ppo"]
    assert {r["variant"] for r in ppo} == {"critic=shared", "critic=separate"}
    assert all(r["reward_model_accuracy"] is not None and r["rollout_seconds"] > 0 for r in ppo)
    assert all(r["peak_tensor_mb"] > 5 for r in results["runs"] if r["algorithm"] not in ("base", "reward")), \
        "counted on seed 0 (the shared reward model is not counted)"
    md = (out / "results.md").read_text()
    assert "| ppo-separate | ppo | critic=separate | 1 |" in md
    comparison = results["comparison"]
    assert {c["method"] for c in comparison["curves"]} == {"base", "ppo-shared", "ppo-separate",
                                                           "grpo", "rloo", "reinforce-pp", "dpo", "ipo", "simpo",
                                                           "kto", "orpo"}
    assert all([p["step"] for p in c["points"]][0] == 0 and len(c["points"]) == 3 for c in comparison["curves"]
               if c["method"] != "base"), "the base at step 0 and 2 evaluation points"
    pairs = [p for p in comparison["pairs"] if p["budget"] == comparison["budgets"][0]]
    assert len(pairs) == 55 and all(p["verdict"] in ("indistinguishable", f"{p['a']} better", f"{p['b']} better")
                                    for p in pairs)
    assert "## Which differences are real" in md and "Holm-corrected" in md
    online = [r for r in results["runs"] if r["algorithm"] in ("ppo", "grpo")]
    assert all(r["proxy_reward"] is not None and r["self_similarity"] is not None for r in online)


@pytest.mark.slow
def test_bench_report_rewrites_the_report_from_the_runs(smoke, capsys):
    out, _ = smoke
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    (out / "results.md").unlink()
    assert main(["bench", "report", str(out)]) == 0
    assert "## Which differences are real" in (out / "results.md").read_text()
    assert before == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}, "nothing retrained"
    assert main(["bench", "report", str(out / "runs")]) == 2
    assert "not a bench output directory (no suite.yaml" in capsys.readouterr().err


@pytest.mark.slow
def test_rerunning_keeps_finished_runs(smoke):
    out, _ = smoke
    before = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}
    messages = []
    outcome = run_bench("smoke", str(out), rerun=False, registry=plugins.default().registry, log=messages.append)
    assert outcome["failed"] == [] and len(before) == 12
    assert sum("finished earlier, kept" in m for m in messages) == 12
    assert before == {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/summary.json")}


@pytest.mark.slow
def test_a_run_on_a_retrained_shared_reward_model_runs_again(tmp_path, toy_world):
    """The shared reward model's path, not its content, is in a run's settings: when the reward model is trained
    again (its settings changed), the runs that use it must not be kept."""
    def suite(reward_steps: int) -> str:
        return write_suite(tmp_path, {"common": TINY, "shared_reward_model": {"max_steps": reward_steps}, "runs": [
            {"name": "grpo", "algorithm": "grpo", "settings": {"max_steps": 1, "prompts_per_step": 4,
                                                               "samples_per_prompt": 2, "batch_size": 8}},
            {"name": "dpo", "algorithm": "dpo", "settings": {"max_steps": 1, "batch_size": 4}}]})

    out = tmp_path / "out"
    registry = plugins.default().registry
    assert run_bench(suite(2), str(out), rerun=False, registry=registry, log=lambda m: None)["failed"] == []
    messages = []
    assert run_bench(suite(3), str(out), rerun=False, registry=registry, log=messages.append)["failed"] == []
    assert any("grpo-seed0: running grpo" in m for m in messages), messages
    assert any("its shared reward model reward-model-seed0 was trained again" in m for m in messages), messages
    assert any("dpo-seed0: finished earlier, kept" in m for m in messages), "a run without it is kept"


@pytest.mark.slow
def test_a_failing_run_is_recorded_and_the_rest_continue(tmp_path, toy_world):
    path = write_suite(tmp_path, {"common": TINY, "runs": [
        {"name": "broken", "algorithm": "ppo", "settings": {"reward_model": str(tmp_path / "no-rm"), "max_steps": 1}},
        {"name": "base", "algorithm": "base"}]})
    out = tmp_path / "out"
    outcome = run_bench(path, str(out), rerun=False, registry=plugins.default().registry, log=lambda m: None)
    assert outcome["failed"] == ["broken-seed0"]
    failure = json.loads((out / "failed" / "broken-seed0.json").read_text())
    assert "not a reward model directory" in failure["error"]
    assert (out / "runs" / "base-seed0" / "summary.json").exists(), "the run after the failure still ran"
    assert "`broken-seed0` failed" in (out / "results.md").read_text()


@pytest.mark.slow
def test_third_party_algorithm_runs_in_a_suite(tmp_path, install_plugin, toy_world):
    install_plugin(EXAMPLE_PLUGIN)
    path = write_suite(tmp_path, {"common": TINY, "runs": [
        {"name": "sft", "algorithm": "sft-chosen", "settings": {"max_steps": 2, "batch_size": 4}}]})
    result = subprocess.run([sys.executable, "-m", "aligner", "bench", path, "--output-dir", str(tmp_path / "o")],
                            capture_output=True, text=True, timeout=300, env=os.environ)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    record = json.loads((tmp_path / "o" / "results.json").read_text())["runs"][0]
    assert record["algorithm"] == "sft-chosen" and record["status"] == "finished" and record["kl"] is not None
