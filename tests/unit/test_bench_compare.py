"""The comparison's choices, on hand-made evaluation points: which point a KL budget picks (on the selection half
of the prompts, reported on the test half), the fitted frontier, and the verdicts."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from aligner.bench import compare, comparison_tables
from aligner.harness import frontier

PROMPTS = 40  # even positions: selection, odd: test


def write_run(out, run_id: str, points: list[tuple[int, float, list, list]]):
    """points: (step, kl per prompt, gold on the selection half, gold on the test half)."""
    directory = out / "runs" / run_id
    directory.mkdir(parents=True)
    with open(directory / frontier.EVALUATIONS, "w") as f:
        for step, kl, selection, test in points:
            gold = [selection[i // 2] if i % 2 == 0 else test[i // 2] for i in range(PROMPTS)]
            f.write(json.dumps({"step": step, "gold_reward": float(np.mean(gold)), "kl": kl,
                                "per_prompt": {"gold": gold, "kl": [kl] * PROMPTS}}) + "\n")
    return SimpleNamespace(id=run_id)


def record(run_id, algorithm, seed, variant=None, sweep=None):
    return {"id": run_id, "status": "finished", "algorithm": algorithm, "variant": variant, "seed": seed,
            "sweep": sweep or {}, "group": run_id.rsplit("-seed", 1)[0]}


def flat(value):
    return [value] * (PROMPTS // 2)


@pytest.fixture
def suite(tmp_path):
    rng = np.random.default_rng(0)
    specs, records = [], []
    for seed in range(3):
        base = list(0.2 + 0.01 * rng.standard_normal(PROMPTS // 2))
        # "good": at KL 1.5 better on both halves; at KL 6 best on selection but beyond a budget of 2
        specs.append(write_run(tmp_path, f"good-seed{seed}", [
            (0, 0.0, base, base), (5, 1.5, flat(0.5), [0.5 + 0.01 * rng.standard_normal() for _ in base]),
            (10, 6.0, flat(0.9), flat(0.9))]))
        records.append(record(f"good-seed{seed}", "good", seed))
        # "lucky": its selection-half gold at KL 1 is high but its test-half gold is the base's: choosing on the
        # selection half must not carry that luck into the reported score
        specs.append(write_run(tmp_path, f"lucky-seed{seed}", [
            (0, 0.0, base, base), (5, 1.0, flat(0.6), base)]))
        records.append(record(f"lucky-seed{seed}", "lucky", seed))
    return tmp_path, specs, records


def test_a_budget_picks_on_the_selection_half_and_reports_the_test_half(suite):
    out, specs, records = suite
    found = compare.curves(out, records, specs)
    chosen = compare.matched(found, [0.5, 2.0, 8.0])
    assert {s: p["step"] for s, p in chosen[2.0]["good"].items()} == {0: 5, 1: 5, 2: 5}
    assert {s: p["step"] for s, p in chosen[8.0]["good"].items()} == {0: 10, 1: 10, 2: 10}
    assert {s: p["step"] for s, p in chosen[0.5]["good"].items()} == {0: 0, 1: 0, 2: 0}, "only the base fits"
    lucky = chosen[2.0]["lucky"][0]
    assert lucky["step"] == 5 and lucky["gold_selection"] == pytest.approx(0.6)
    assert lucky["gold_test"] == pytest.approx(chosen[0.5]["lucky"][0]["gold_test"]), "reported on the test half"
    assert len(lucky["test_gold"]) == PROMPTS // 2


def test_a_strength_swept_on_one_seed_joins_the_frontier_but_not_the_choice(suite):
    out, specs, records = suite
    specs.append(write_run(out, "good-beta9-seed0", [(0, 0.0, flat(0.2), flat(0.2)), (5, 1.0, flat(0.95),
                                                                                       flat(0.95))]))
    records.append(record("good-beta9-seed0", "good", 0, sweep={"beta": 9}))
    found = compare.curves(out, records, specs)
    assert compare.matched(found, [2.0])[2.0]["good"][0]["step"] == 5
    assert compare.matched(found, [2.0])[2.0]["good"][0]["gold_selection"] == pytest.approx(0.5), \
        "seed 0 chose among the complete group's points only"
    assert compare.fits(found)["good"]["points"] == 7


def test_verdicts_name_the_better_method_only_where_the_test_half_says_so(suite):
    out, specs, records = suite
    analysis = compare.analyse(out, records, specs, [0.5, 2.0], resamples=2000)
    pairs = {p["budget"]: p for p in analysis["pairs"]}
    assert pairs[2.0]["a"] == "good" and pairs[2.0]["b"] == "lucky"
    assert pairs[2.0]["verdict"] == "good better" and pairs[2.0]["low"] > 0.25
    assert pairs[2.0]["probability_of_improvement"] == 1.0
    assert pairs[0.5]["verdict"] == "indistinguishable" and pairs[0.5]["difference"] == 0.0, "both are the base"
    rows = {(r["budget"], r["method"]): r for r in analysis["matched"]}
    assert rows[(2.0, "lucky")]["gold_test_mean"] == pytest.approx(rows[(0.5, "lucky")]["gold_test_mean"])
    assert rows[(2.0, "good")]["seeds"] == 3 and rows[(2.0, "good")]["low"] < 0.5 < rows[(2.0, "good")]["high"]
    table = comparison_tables.verdict_table(analysis, budget=2.0)
    assert "| 2 | good | lucky | 3 | +0.3" in table and "good better" in table
    assert "KL <= 2: 1 of 1 pairs decided: good > lucky" in comparison_tables.verdict_counts(analysis)


def test_the_fitted_frontier_recovers_gao_et_als_parameters(tmp_path):
    alpha, beta, start = 0.3, 0.1, 0.2
    specs, records = [], []
    for seed in range(2):
        points = [(0, 0.0, flat(start), flat(start))]
        for step, kl in enumerate([0.5, 1.0, 2.0, 4.0, 8.0], start=1):
            d = math.sqrt(kl)
            gold = start + d * (alpha - beta * math.log(d))
            points.append((step, kl, flat(gold), flat(gold)))
        specs.append(write_run(tmp_path, f"ppo-seed{seed}", points))
        records.append(record(f"ppo-seed{seed}", "ppo", seed, variant="critic=shared"))
    fits = compare.fits(compare.curves(tmp_path, records, specs))
    fit = fits["ppo-shared"]
    assert fit["alpha"] == pytest.approx(alpha) and fit["beta"] == pytest.approx(beta)
    assert fit["points"] == 10 and fit["r2"] == pytest.approx(1.0) and fit["max_kl"] == 8.0


def test_runs_without_evaluation_points_are_left_out(tmp_path):
    (tmp_path / "runs" / "old-seed0").mkdir(parents=True)
    records = [record("old-seed0", "dpo", 0), {**record("failed-seed0", "dpo", 0), "status": "failed"}]
    specs = [SimpleNamespace(id="old-seed0"), SimpleNamespace(id="failed-seed0")]
    analysis = compare.analyse(tmp_path, records, specs, [1.0])
    assert analysis["curves"] == [] and analysis["pairs"] == [] and comparison_tables.section(analysis) == ""
