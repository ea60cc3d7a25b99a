"""DPO and ORPO through the whole run: a few steps on the toy world, checked for effect, artefacts and memory."""

import json
import subprocess
import sys
from collections import Counter

import pytest
import torch
from peft import PeftModel

import aligner
from aligner.modeling import base as models

from helpers import base_weight_storages, completion_logp

FAST = dict(max_steps=16, batch_size=16, learning_rate=2e-3, eval_prompts=32, eval_max_new_tokens=12)


@pytest.fixture
def few_pairs(tmp_path, toy_world):
    """32 toy pairs as a user's local file: 16 steps of 16 see each pair 8 times, so the effect is on them."""
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(toy_world.train_path.read_text().splitlines(keepends=True)[:32]))
    return dict(dataset=str(path), eval_dataset=str(toy_world.eval_prompts_path))
SUMMARY_KEYS = {"algorithm", "variant", "model", "gold_reward_before", "gold_reward_after", "kl", "peak_memory_mb",
                "train_seconds", "trainable_params"}


def capture_trained_model(monkeypatch, plugin_module):
    """Wraps the plugin's train() so the test can inspect the trained PeftModel."""
    import importlib

    module = importlib.import_module(plugin_module)
    held = {}
    original = module.train

    def train(context):
        held["model"] = original(context)
        held["rows"] = context.train_dataset.to_list()
        return held["model"]

    monkeypatch.setattr(module, "train", train)
    return held


def pair_logps(model, tok, rows):
    chosen = torch.stack([completion_logp(model, tok, r["prompt"], r["chosen"]) for r in rows])
    rejected = torch.stack([completion_logp(model, tok, r["prompt"], r["rejected"]) for r in rows])
    return chosen, rejected



@pytest.fixture(scope="module")
def toy_base_shapes(toy_world):
    base, _ = models.load_base("aligner-toy", models.placement("cpu"))
    return Counter(tuple(p.shape) for n, p in base.named_parameters() if p.dim() == 2)


def test_dpo_moves_preferences_and_keeps_one_base_copy(tmp_path, monkeypatch, toy_base_shapes, few_pairs):
    """On aligner's engine the reference is the base with the adapter disabled: no second copy of any base weight
    exists while training."""
    from aligner.offline import engine

    held = capture_trained_model(monkeypatch, "aligner_dpo.train")
    observed = {"calls": 0}
    original = engine.pair_logps

    def counting(*args, **kwargs):
        observed["calls"] += 1
        if observed["calls"] == 2:
            observed["storages"] = base_weight_storages()
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, "pair_logps", counting)
    summary = aligner.run("dpo", output_dir=str(tmp_path / "run"), verbose=False, **FAST, **few_pairs)

    assert observed["calls"] == FAST["max_steps"]
    for shape, n in toy_base_shapes.items():
        assert observed["storages"][shape] == n, f"{shape}: {observed['storages'][shape]} storages, base has {n}"

    model, tok = held["model"], aligner_tokenizer(tmp_path / "run")
    chosen, rejected = pair_logps(model, tok, held["rows"])
    with model.disable_adapter():
        ref_chosen, ref_rejected = pair_logps(model, tok, held["rows"])
    margin = ((chosen - ref_chosen) - (rejected - ref_rejected)).mean()
    assert margin > 0.5, f"DPO's implicit reward margin on training pairs should grow from 0, got {margin:.3f}"
    assert SUMMARY_KEYS <= set(summary) and summary["kl"] > 0


def aligner_tokenizer(run_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(run_dir / "adapter")


def test_orpo_raises_odds_of_chosen_and_adapter_reloads(tmp_path, monkeypatch, few_pairs):
    held = capture_trained_model(monkeypatch, "aligner_orpo.train")
    run_dir = tmp_path / "run"
    aligner.run("orpo", output_dir=str(run_dir), verbose=False, **FAST, **few_pairs)
    model, tok = held["model"], aligner_tokenizer(run_dir)

    def log_odds_gap(m):
        chosen, rejected = pair_logps(m, tok, held["rows"])
        n_c = torch.tensor([len(tok(r["chosen"])["input_ids"]) for r in held["rows"]])
        n_r = torch.tensor([len(tok(r["rejected"])["input_ids"]) for r in held["rows"]])
        pc, pr = chosen / n_c, rejected / n_r  # ORPO uses length-averaged log-probs

        def log_odds(lp):
            return lp - torch.log1p(-torch.exp(lp))

        return (log_odds(pc) - log_odds(pr)).mean()

    trained_gap = log_odds_gap(model)
    with model.disable_adapter():
        base_gap = log_odds_gap(model)
    assert trained_gap > base_gap + 0.05, (trained_gap, base_gap)

    ids = tok(["the plot was very", "it is a"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model(**ids).logits
    fresh_base, _ = models.load_base("aligner-toy", models.placement("cpu"))
    reloaded = PeftModel.from_pretrained(fresh_base, run_dir / "adapter").eval()
    with torch.no_grad():
        assert torch.allclose(reloaded(**ids).logits, expected, atol=1e-5)
        with reloaded.disable_adapter():
            assert not torch.allclose(reloaded(**ids).logits, expected, atol=1e-3), "the adapter must matter"


@pytest.mark.slow
def test_cli_run_writes_the_run_directory_contract(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "aligner", "run", "dpo", "--output-dir", str(out), "--max-steps", "3",
           "--eval-prompts", "8", "--eval-max-new-tokens", "6"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "gold reward (policy)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary) and summary["algorithm"] == "dpo" and summary["variant"] is None
    assert (out / "adapter" / "adapter_config.json").exists()
    assert "beta: 0.1" in (out / "config.yaml").read_text()
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[:3] == [1, 2, 3]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging directory left behind"

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and "not empty; pass --overwrite" in again.stderr
    overwrite = subprocess.run(cmd + ["--overwrite", "--seed", "1"], capture_output=True, text=True, timeout=300)
    assert overwrite.returncode == 0, overwrite.stderr[-2000:]
    assert json.loads((out / "summary.json").read_text())["seed"] == 1
