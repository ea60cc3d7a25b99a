"""Evaluation points (--eval-points): the policy evaluated during training, for a curve of gold reward against KL.
They must not change the training, must pair prompt by prompt across runs, and must survive a resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

import aligner
from aligner.harness import frontier

EVAL = dict(eval_prompts=8, eval_max_new_tokens=6, diversity_prompts=2, diversity_samples=3)
ONLINE = dict(max_steps=4, prompts_per_step=4, samples_per_prompt=4, batch_size=8, response_length=8,
              reward_model_steps=5, **EVAL)
OFFLINE = dict(max_steps=4, batch_size=8, **EVAL)


def adapter(run: Path) -> dict:
    return load_file(str(run / "adapter" / "adapter_model.safetensors"))


def points(run: Path) -> list[dict]:
    return frontier.read(run / frontier.EVALUATIONS)


def test_schedule_spreads_points_evenly_and_ends_at_the_last_step():
    assert frontier.evaluation_steps(25, 5) == [5, 10, 15, 20, 25]
    assert frontier.evaluation_steps(100, 3) == [33, 67, 100]
    assert frontier.evaluation_steps(3, 5) == [1, 2, 3]  # more points than steps: every step once
    assert frontier.evaluation_steps(10, 1) == [10]


@pytest.mark.parametrize("algorithm,settings", [("grpo", ONLINE), ("dpo", OFFLINE)])
def test_evaluation_points_change_nothing_in_the_training(tmp_path, toy_world, algorithm, settings):
    once = aligner.run(algorithm, output_dir=str(tmp_path / "once"), tensor_memory="on", **settings)
    thrice = aligner.run(algorithm, output_dir=str(tmp_path / "thrice"), eval_points=3, tensor_memory="on",
                         **settings)
    a, b = adapter(tmp_path / "once"), adapter(tmp_path / "thrice")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a), "evaluating changed the trained adapter"
    assert once["gold_reward_after"] == thrice["gold_reward_after"] and once["kl"] == thrice["kl"]
    assert once["peak_tensor_mb"] == thrice["peak_tensor_mb"], "the points' sampling counted in the training's peak"

    rows = points(tmp_path / "thrice")
    assert [r["step"] for r in rows] == [0, 1, 3, 4]  # the base, round(4/3), round(8/3), the end
    assert [r["step"] for r in points(tmp_path / "once")] == [0, 4]
    assert rows[0]["kl"] == 0.0 and rows[0]["gold_reward"] == thrice["gold_reward_before"]
    assert rows[-1]["gold_reward"] == thrice["gold_reward_after"] and rows[-1]["kl"] == thrice["kl"]
    for row in rows:
        per = row["per_prompt"]
        assert len(per["gold"]) == len(per["kl"]) == len(per["response"]) == 8
        assert row["gold_reward"] == pytest.approx(sum(per["gold"]) / 8)
    assert rows[1]["kl"] != 0.0, "a point during training evaluated the base, not the policy"
    assert thrice["evaluation_points_seconds"] > 0 and once["evaluation_points_seconds"] == 0
    if algorithm == "grpo":  # the proxy (here the run's own reward model) beside gold, once it exists
        assert all(r["proxy_reward"] is not None and len(r["per_prompt"]["proxy"]) == 8 for r in rows[1:])
        assert thrice["proxy_reward_after"] == rows[-1]["proxy_reward"]
    else:
        assert all(r["proxy_reward"] is None for r in rows)
    diversity = json.loads((tmp_path / "thrice" / "samples.json").read_text())["diversity"]
    assert [d["group"] for d in diversity["policy"]] == [0, 0, 0, 1, 1, 1] == [d["group"] for d in diversity["base"]]


def test_a_resumed_run_keeps_the_points_evaluated_before_its_checkpoint(tmp_path, toy_world):
    from aligner.offline import engine

    original, calls = engine.write, {"n": 0}

    def dies_at_the_second_checkpoint(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    settings = dict(OFFLINE, eval_points=4, save_every=2)
    engine.write = dies_at_the_second_checkpoint
    try:
        with pytest.raises(KeyboardInterrupt):
            aligner.run("dpo", output_dir=str(tmp_path / "killed"), **settings)
    finally:
        engine.write = original
    partial = next(tmp_path.glob(".killed.partial-*"))
    killed = {r["step"]: r for r in points(partial)}
    assert sorted(killed) == [0, 1, 2, 3]
    aligner.run("dpo", output_dir=str(tmp_path / "resumed"), resume=str(partial), **settings)
    rows = points(tmp_path / "resumed")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[1] == killed[1] and rows[2] == killed[2], "points before the checkpoint are carried as they were"
    whole = aligner.run("dpo", output_dir=str(tmp_path / "whole"), **settings)
    assert [r["gold_reward"] for r in points(tmp_path / "whole")] == [r["gold_reward"] for r in rows]
    assert whole["kl"] == rows[-1]["kl"]
