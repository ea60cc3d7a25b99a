"""Every registered algorithm, built-in or not, trains for two steps through the same runner and leaves the same
run-directory contract. A new plugin is one more row of this matrix, with no test of its own needed for that."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

import aligner
from aligner import plugins

TWO_STEPS = dict(max_steps=2, batch_size=4, eval_prompts=4, eval_max_new_tokens=4, rollout_batch_size=8,
                 reward_model_steps=2, response_length=8)
"""The smallest sizes, given to each algorithm where its settings have the field."""


@pytest.mark.parametrize("name", sorted(plugins.default().registry.algorithms))
def test_every_algorithm_trains_two_steps_and_writes_the_run_directory(tmp_path, toy_world, name):
    algorithm = plugins.default().registry.algorithm(name)
    fields = {f.name for f in dataclasses.fields(algorithm.config_class)}
    settings = {k: v for k, v in TWO_STEPS.items() if k in fields}
    out = tmp_path / "run"
    summary = aligner.run(name, output_dir=str(out), verbose=False, **settings)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no staging directory or lock left beside it"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["algorithm"] == name and config["max_steps"] == 2
    assert json.loads((out / "summary.json").read_text()) == {k: v for k, v in summary.items() if k != "output_dir"}
    assert summary["settings_fingerprint"] and summary["train_seconds"] > 0 and summary["peak_memory_mb"] > 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(row["step"], int) for row in rows)
    samples = json.loads((out / "samples.json").read_text())
    documented = {"adapter", "config.yaml", "metrics.jsonl", "summary.json", "samples.json", "reward_model", "critic",
                  "checkpoints"}
    assert {p.name for p in out.iterdir()} <= documented, "only what docs/running.md lists"
    if algorithm.trains_policy:
        assert (out / "adapter" / "adapter_model.safetensors").is_file()
        assert summary["gold_reward_before"] is not None and summary["kl"] is not None
        assert len(samples["base"]) == len(samples["policy"]) == 4
        if name != "base":
            assert rows, "a trained algorithm logs its steps"
    else:
        assert not (out / "adapter").exists() and summary["gold_reward_after"] is None
