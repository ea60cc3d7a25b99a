"""Every registered algorithm, built-in or not, trains for two steps through the same runner and leaves the same
run-directory contract. A new plugin is one more row of this matrix, with no test of its own needed for that."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
import yaml

import aligner
from aligner import plugins

TWO_STEPS = dict(max_steps=2, batch_size=4, eval_prompts=4, eval_max_new_tokens=4, prompts_per_step=8,
                 reward_model_steps=2, response_length=8)
"""The smallest sizes, given to each algorithm where its settings have the field."""


@pytest.mark.parametrize("name", sorted(plugins.default().registry.algorithms))
def test_every_algorithm_trains_two_steps_and_writes_the_run_directory(tmp_path, toy_world, name):
    algorithm = plugins.default().registry.algorithm(name)
    fields = {f.name for f in dataclasses.fields(algorithm.config_class)}
    settings = {k: v for k, v in TWO_STEPS.items() if k in fields}
    out = tmp_path / "run"
    summary = aligner.run(name, output_dir=str(out), verbose=False, tensor_memory="on", **settings)

    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"], "no staging directory or lock left beside it"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["algorithm"] == name and config["max_steps"] == 2
    assert json.loads((out / "summary.json").read_text()) == {k: v for k, v in summary.items() if k != "output_dir"}
    assert summary["settings_fingerprint"] and summary["train_seconds"] > 0 and summary["peak_memory_mb"] > 0
    # the weights alone are counted (the toy base: 1.34M float32 parameters)
    assert summary["peak_tensor_mb"] > 1.34e6 * 4 / 2**20
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(isinstance(row["step"], int) for row in rows)
    samples = json.loads((out / "samples.json").read_text())
    documented = {"adapter", "config.yaml", "metrics.jsonl", "summary.json", "samples.json", "evaluations.jsonl",
                  "reward_model", "critic", "checkpoints"}
    assert {p.name for p in out.iterdir()} <= documented, "only what docs/running.md lists"
    if algorithm.trains_policy:
        assert (out / "adapter" / "adapter_model.safetensors").is_file()
        assert summary["gold_reward_before"] is not None and summary["kl"] is not None
        assert len(samples["base"]) == len(samples["policy"]) == 4
        if name != "base":
            assert rows, "a trained algorithm logs its steps"
    else:
        assert not (out / "adapter").exists() and summary["gold_reward_after"] is None


@pytest.mark.parametrize("name", sorted(plugins.default().registry.algorithms))
def test_every_algorithm_takes_gradient_checkpointing(tmp_path, toy_world, name):
    """--gradient-checkpointing reaches every algorithm that trains through a model: decoder layers run again
    inside the backward pass (an attention module's forward while a backward graph task is running)."""
    algorithm = plugins.default().registry.algorithm(name)
    fields = {f.name for f in dataclasses.fields(algorithm.config_class)}
    settings = {k: v for k, v in TWO_STEPS.items() if k in fields}
    recomputed = []

    def spy(module, args, output):
        if type(module).__name__.endswith("Attention") and torch._C._current_graph_task_id() != -1:
            recomputed.append(type(module).__name__)

    handle = torch.nn.modules.module.register_module_forward_hook(spy)
    try:
        aligner.run(name, output_dir=str(tmp_path / "on"), gradient_checkpointing=True, tensor_memory="off",
                    **settings)
        assert bool(recomputed) == (name != "base"), f"{name}: {len(recomputed)} recomputed attention passes"
        recomputed.clear()
        aligner.run(name, output_dir=str(tmp_path / "off"), tensor_memory="off", **settings)
        assert not recomputed, f"{name}: checkpointed without --gradient-checkpointing"
    finally:
        handle.remove()
