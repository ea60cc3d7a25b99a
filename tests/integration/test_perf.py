"""The GPU performance suite's path, at a tiny size on CPU: every layout runs aligner's own training code in its own
process and is reported; a failed layout is reported, not hidden."""

import json

import pytest

from benchmarks.perf import suite as perf
from benchmarks.perf import world as perf_world


@pytest.mark.slow
def test_perf_suite_runs_every_layout_on_cpu(tmp_path):
    code = perf.main(["--shape", "tiny", "--batch", "2", "--prompt-length", "8", "--response-length", "8",
                      "--steps", "3", "--output-dir", str(tmp_path)])
    assert code == 0
    results = json.loads((tmp_path / "perf.json").read_text())
    assert [r["layout"] for r in results["results"]] == perf.LAYOUTS
    for r in results["results"]:
        assert r["update_seconds"] > 0 and r["update_flops"] > 0 and r["peak_memory_mb"] > 0
        assert r["peak_tensor_mb"] > 0
    by = {r["layout"]: r for r in results["results"]}
    tiny = perf_world.SHAPES["tiny"]
    critic_lm_head_input_grad = 2 * tiny["hidden_size"] * tiny["vocab_size"] * 2 * 16  # batch 2, 8 + 8 tokens
    assert by["ppo-separate"]["update_flops"] == 2 * by["ppo-shared"]["update_flops"] - critic_lm_head_input_grad
    for layout in ("ppo-shared", "ppo-separate", "ppo-copies"):
        assert by[layout]["generation_tokens_per_second"] > 0 and by[layout]["decode_bytes"] > 0
        assert by[layout]["generation_cache"] == "static"
    text = (tmp_path / "perf.md").read_text()
    assert "- ppo-shared / ppo-copies peak tensor memory: " in text and "| ppo-copies |" in text
    assert results["command"].startswith("python -m benchmarks.perf --shape tiny")


def test_a_failed_layout_is_reported_with_its_error():
    rates = {"matmul_flops_per_second": 1e12, "bandwidth_bytes_per_second": 1e11}
    args = perf.parse(["--shape", "tiny"])
    ok = {"layout": "dpo", "device": "cpu", "dtype": "float32", "peak_memory_mb": 100.0, "update_seconds": 1.0,
          "update_flops": 5e11}
    text = perf.report([ok, {"layout": "ppo-copies", "error": "torch.OutOfMemoryError: CUDA out of memory"}],
                       rates, args)
    assert "| ppo-copies | failed: torch.OutOfMemoryError: CUDA out of memory |" in text
    assert "| dpo | - | 100 | - | - | 1.000 | - | - | 50.0% |" in text


def test_too_few_steps_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_info:
        perf.parse(["--steps", "1"])
    assert exit_info.value.code == 2 and "--steps must be at least 2" in capsys.readouterr().err


def test_synthetic_texts_have_exact_token_lengths():
    tok = perf_world.tokenizer("tiny", 64)
    prompt = perf_world.prompts("tiny", 3, 8)
    assert [len(ids) for ids in tok(prompt)["input_ids"]] == [8, 8, 8], "BOS plus 7 words"
    pair = perf_world.preference_pairs("tiny", 1, 8, 6)[0]
    assert len(tok(pair["chosen"], add_special_tokens=False)["input_ids"]) == 5, "5 words; TRL appends EOS"
    assert tok.unk_token_id not in tok(prompt[0])["input_ids"]


def test_ratio_lines_say_whether_each_target_is_met():
    lines = perf.ratio_lines({"dpo": 100.0, "ppo-shared": 120.0, "ppo-separate": 180.0, "ppo-copies": 300.0})
    assert lines == ["- ppo-shared / dpo peak tensor memory: 1.20x (target <= 1.5x: met)",
                     "- ppo-separate / dpo peak tensor memory: 1.80x (target <= 1.7x: missed)",
                     "- ppo-shared / ppo-copies peak tensor memory: 0.40x (target <= 0.5x: met)",
                     "- ppo-separate / ppo-copies peak tensor memory: 0.60x (target <= 0.5x: missed)"]
    assert perf.speedup_lines({"dpo": 2.0, "dpo-trl": 3.0}) == [
        "- dpo / dpo-trl speed-up (update seconds per step): 1.50x (target >= 1.3x: met)"]


@pytest.mark.slow
def test_fake_tensor_estimate_matches_a_measured_run(tmp_path):
    """The estimator runs the same steps on fake tensors; at a size that runs here, it must land within 10% of
    what the counter measured (it assumes every response runs to full length, so it may only be a little high)."""
    from benchmarks.perf import estimate

    assert perf.main(["--shape", "tiny", "--batch", "4", "--prompt-length", "16", "--response-length", "16",
                      "--steps", "2", "--generation-cache", "dynamic", "--output-dir", str(tmp_path)]) == 0
    assert estimate.main(["--validate", str(tmp_path / "perf.json"), "--output", str(tmp_path / "v.json")]) == 0
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert [r["layout"] for r in rows] == estimate.ESTIMATED
    assert set(perf.LAYOUTS) - set(estimate.ESTIMATED) == {"dpo", "simpo"}, "only the engine's layouts go unestimated"
    for r in rows:
        assert 0.95 <= r["estimate_over_measured"] <= 1.10, r


def test_the_shaped_grpo_race_reward_is_the_share_of_even_numbered_words():
    from benchmarks.grpo_race import even_words

    assert even_words(["p"] * 4, ["w2 w3 w4 w7", "w1", "", "w10 and w12"]) == [0.5, 0.0, 0.0, 1.0]
