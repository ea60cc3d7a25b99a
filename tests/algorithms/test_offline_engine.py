"""aligner's offline engine: every offline method resumes from a mid-run checkpoint to the adapter the
uninterrupted run trains, bit for bit; the data order replays; bad settings are refused before anything loads."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

import aligner
from aligner.cli import main
from aligner.data.batches import ShuffledOrder

SMALL = dict(max_steps=4, save_every=2, batch_size=8, eval_prompts=4, eval_max_new_tokens=6, tensor_memory="off",
             verbose=False)


def adapter(run_dir):
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.mark.parametrize("name, extra", [("dpo", {}), ("dpo", {"precompute_ref_log_probs": True}), ("ipo", {}),
                                         ("kto", {}), ("orpo", {}), ("simpo", {})])
def test_a_resumed_offline_run_trains_what_the_uninterrupted_one_trains(tmp_path, toy_world, name, extra):
    whole = tmp_path / "whole"
    aligner.run(name, output_dir=str(whole), **SMALL, **extra)
    middle = whole / "checkpoints" / "step-000002"
    assert sorted(p.name for p in (whole / "checkpoints").iterdir()) == ["step-000002", "step-000004"]
    summary = aligner.run(name, output_dir=str(tmp_path / "resumed"), resume=str(middle), **SMALL, **extra)
    assert summary["resumed_from_step"] == 2
    first, second = adapter(whole), adapter(tmp_path / "resumed")
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [s for s in steps if s > 0][:4] == [1, 2, 3, 4], "the resumed run's metrics read as one run"


def test_the_data_order_replays_from_its_count():
    order = ShuffledOrder(10, 4, seed=3)
    drawn = [next(order) for _ in range(7)]
    replay = ShuffledOrder(10, 4, seed=3)
    replay.skip(5)
    assert [next(replay), next(replay)] == drawn[5:] and replay.drawn == 7
    assert sorted(sum(drawn[:5], [])[:10]) == list(range(10)), "each epoch visits every row once"


def test_conservative_dpo_by_hand():
    from aligner_dpo.loss import dpo_loss

    chosen, rejected = torch.tensor([1.0]), torch.tensor([-1.0])
    margin = 0.5 * 2.0
    expected = -(0.9 * math.log(1 / (1 + math.exp(-margin))) + 0.1 * math.log(1 / (1 + math.exp(margin))))
    assert dpo_loss(chosen, rejected, 0.5, "sigmoid", 0.1).item() == pytest.approx(expected, rel=1e-6)
    assert dpo_loss(chosen, rejected, 0.5, "hinge").item() == pytest.approx(0.0)
    assert dpo_loss(rejected, chosen, 0.5, "hinge").item() == pytest.approx(2.0)


@pytest.mark.parametrize("argv, message", [
    (["dpo", "--loss-type", "ipo"], "--loss-type ipo needs --implementation trl (`aligner run ipo` trains IPO"),
    (["dpo", "--implementation", "trl", "--label-smoothing", "0.1"], "TRL's DPOTrainer ignores it"),
    (["kto", "--implementation", "trl", "--resume", "runs/x"], "--resume needs --implementation aligner"),
    (["simpo", "--save-every", "0"], "--save-every must be > 0"),
])
def test_bad_offline_settings_are_refused(tmp_path, capsys, argv, message):
    assert main(["run", *argv, "--output-dir", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_resume_refuses_another_loops_or_changed_checkpoint_before_loading(tmp_path, toy_world, capsys):
    run = tmp_path / "run"
    aligner.run("simpo", output_dir=str(run), **{**SMALL, "max_steps": 2})
    capsys.readouterr()
    same = ["--max-steps", "2", "--save-every", "2", "--batch-size", "8", "--eval-prompts", "4",
            "--eval-max-new-tokens", "6", "--tensor-memory", "off"]
    assert main(["run", "simpo", *same, "--resume", str(run), "--beta", "3", "--output-dir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "settings differ from the checkpointed run's (beta: 2.0 -> 3.0)" in err and "data:" not in err
    assert main(["run", "grpo", "--reward", "gold", "--resume", str(run), "--output-dir", str(tmp_path / "g")]) == 2
    assert "a checkpoint of offline training, not of online training" in capsys.readouterr().err
