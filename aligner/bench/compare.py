"""Which differences between algorithms are real: frontiers of gold reward against KL, gold at matched KL chosen on
one half of the held-out prompts and measured on the other, and a verdict for every pair of algorithms.

Each run's evaluation points (`evaluations.jsonl`: the base at step 0, then --eval-points points over training)
hold per-prompt gold and KL on the same held-out prompts for every run. The prompts are split once, by position,
into a selection half (even positions) and a test half (odd): for a KL budget, each seed's point is the one whose
KL on the selection half is within the budget and whose gold on the selection half is highest, pooled over the
method's runs of that seed (every strength swept, every checkpoint), and its gold on the test half is what the
report compares. Choosing on one half and scoring on the other keeps the choice from flattering the score, and a
budget no point meets is left empty rather than extrapolated. Only a method's run groups that have every seed the
method has take part in that choice: a strength swept on one seed would otherwise give that seed more chances than
the others. Swept strengths still join the method's frontier and its fitted curve.

A method is an algorithm with its variant (PPO's critic); the runs of a sweep join their algorithm's method.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aligner.bench import stats
from aligner.bench.execute import run_dir
from aligner.harness import frontier

@dataclass
class Curve:
    """One run's evaluation points, split into the selection and the test half of the prompts."""

    id: str
    method: str
    group: str
    seed: int
    sweep: dict
    points: list[dict] = field(default_factory=list)


def method_of(record: dict) -> str:
    """The algorithm with its variant's value (PPO's `critic=shared` makes `ppo-shared`)."""
    variant = record.get("variant")
    return record["algorithm"] + (f"-{variant.split('=', 1)[-1]}" if variant else "")


def _half(values: list, half: int) -> list:
    return values[half::2]


def _mean(values: list) -> float:
    scored = [v for v in values if v is not None]
    return float(np.mean(scored)) if scored else math.nan


def point(row: dict) -> dict:
    """An evaluation point with its means over each half of the prompts; `test_gold` keeps the test half per prompt
    (None where the judge did not score), for paired comparisons."""
    gold, kl = row["per_prompt"]["gold"], row["per_prompt"]["kl"]
    return {"step": row["step"], "kl": row["kl"], "gold": row["gold_reward"], "proxy": row.get("proxy_reward"),
            "response_tokens": row.get("response_tokens"),
            "kl_selection": _mean(_half(kl, 0)), "gold_selection": _mean(_half(gold, 0)),
            "kl_test": _mean(_half(kl, 1)), "gold_test": _mean(_half(gold, 1)), "test_gold": _half(gold, 1)}


def curves(out: Path, records: list[dict], specs) -> list[Curve]:
    """The curves of the finished runs that wrote evaluation points."""
    by_id = {spec.id: spec for spec in specs}
    found = []
    for record in records:
        path = run_dir(out, by_id[record["id"]]) / frontier.EVALUATIONS
        if record["status"] != "finished" or not path.is_file():
            continue
        rows = frontier.read(path)
        if rows:
            found.append(Curve(record["id"], method_of(record), record["group"], record["seed"],
                               record.get("sweep") or {},
                               [point(r) for r in rows]))
    return found


def fits(found: list[Curve]) -> dict[str, dict]:
    """Gao et al.'s RL form per method over all its points (seeds, strengths, checkpoints): gain = gold minus the
    same run's gold at step 0, against KL; descriptive for offline methods, for which the form was not derived."""
    out = {}
    for method in sorted({c.method for c in found}):
        kl, gain = [], []
        for curve in (c for c in found if c.method == method):
            start = next((p["gold"] for p in curve.points if p["step"] == 0), None)
            if start is None:
                continue
            for p in curve.points:
                if p["step"] > 0 and p["gold"] is not None:
                    kl.append(p["kl"])
                    gain.append(p["gold"] - start)
        fit = stats.fit_gao(kl, gain) if kl else None
        if fit is not None:
            out[method] = {**fit, "max_kl": max(kl)}
    return out


def matched(found: list[Curve], budgets) -> dict[float, dict[str, dict[int, dict]]]:
    """budget -> method -> seed -> the chosen point (see the module's docstring)."""
    seeds_of: dict[tuple[str, str], set] = {}
    for c in found:
        seeds_of.setdefault((c.method, c.group), set()).add(c.seed)
    most = {method: max(len(seeds) for (m, _), seeds in seeds_of.items() if m == method) for method, _ in seeds_of}
    complete = [c for c in found if len(seeds_of[(c.method, c.group)]) == most[c.method]]
    chosen: dict[float, dict[str, dict[int, dict]]] = {}
    for budget in budgets:
        per_method: dict[str, dict[int, dict]] = {}
        for (method, seed), group in itertools.groupby(sorted(complete, key=lambda c: (c.method, c.seed)),
                                                       key=lambda c: (c.method, c.seed)):
            candidates = [p for c in group for p in c.points]
            best = stats.select_at_budget(candidates, budget)
            if best is not None:
                per_method.setdefault(method, {})[seed] = best
        chosen[budget] = per_method
    return chosen


def _paired_matrix(a: dict[int, dict], b: dict[int, dict], seeds: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """[seeds, test prompts] gold of A and B, keeping the prompts every chosen point scored."""
    rows_a = [a[s]["test_gold"] for s in seeds]
    rows_b = [b[s]["test_gold"] for s in seeds]
    width = min(len(r) for r in rows_a + rows_b)
    keep = [i for i in range(width) if all(r[i] is not None for r in rows_a + rows_b)]
    return (np.array([[r[i] for i in keep] for r in rows_a], dtype=float),
            np.array([[r[i] for i in keep] for r in rows_b], dtype=float))


def summary_rows(chosen: dict, resamples: int = 10_000) -> list[dict]:
    """Per budget and method: seeds reached, mean and IQM of the seeds' test gold, its 95% interval (bootstrap over
    seeds and prompts), and the mean KL on the test prompts."""
    rows = []
    for budget, per_method in chosen.items():
        for method, per_seed in sorted(per_method.items()):
            seeds = sorted(per_seed)
            gold = np.array([per_seed[s]["gold_test"] for s in seeds])
            matrix, _ = _paired_matrix(per_seed, per_seed, seeds)
            if matrix.shape[1] == 0:
                continue
            # the interval of the mean alone: the paired bootstrap of the method against zero
            interval = stats.paired_bootstrap(matrix, np.zeros_like(matrix), resamples=resamples)
            rows.append({"budget": budget, "method": method, "seeds": len(seeds), "gold_test_mean": float(gold.mean()),
                         "gold_test_iqm": stats.iqm(gold), "low": interval["low"], "high": interval["high"],
                         "kl_test_mean": float(np.mean([per_seed[s]["kl_test"] for s in seeds])),
                         "steps": [per_seed[s]["step"] for s in seeds]})
    return rows


def pairwise(chosen: dict, resamples: int = 10_000, alpha: float = 0.05) -> list[dict]:
    """Every pair of methods at every budget, over the seeds both reached: the paired bootstrap interval of the
    test-gold difference (seeds, then prompts within seeds), its p-value Holm-corrected across the pairs of that
    budget, the verdict, and the probability of improvement over the seeds' test gold."""
    out = []
    for budget, per_method in chosen.items():
        pairs = []
        for a, b in itertools.combinations(sorted(per_method), 2):
            seeds = sorted(set(per_method[a]) & set(per_method[b]))
            if not seeds:
                continue
            matrix_a, matrix_b = _paired_matrix(per_method[a], per_method[b], seeds)
            if matrix_a.shape[1] == 0:  # no test prompt that every chosen point's judge scored
                continue
            interval = stats.paired_bootstrap(matrix_a, matrix_b, resamples=resamples)
            improvement = stats.probability_of_improvement(matrix_a.mean(axis=1), matrix_b.mean(axis=1),
                                                           resamples=resamples)
            pairs.append({"budget": budget, "a": a, "b": b, "seeds": len(seeds), "prompts": matrix_a.shape[1],
                          **{k: interval[k] for k in ("difference", "low", "high", "p_value")},
                          "probability_of_improvement": improvement["probability"],
                          "improvement_low": improvement["low"], "improvement_high": improvement["high"]})
        for pair, corrected in zip(pairs, stats.holm([p["p_value"] for p in pairs], alpha)):
            pair["p_holm"] = corrected["adjusted"]
            pair["verdict"] = stats.verdict(pair, corrected["reject"], pair["a"], pair["b"])
        out.extend(pairs)
    return out


def analyse(out: Path, records: list[dict], specs, budgets, resamples: int = 10_000) -> dict:
    """Everything the report says about the comparison, as plain data (results.json's `comparison`)."""
    found = curves(out, records, specs)
    chosen = matched(found, budgets)
    return {
        "budgets": list(budgets),
        "split": "selection: held-out prompts at even positions; test: odd positions",
        "holm": "Holm-corrected across the pairs of each budget, family-wise error 0.05",
        "curves": [{"id": c.id, "method": c.method, "seed": c.seed, "sweep": c.sweep,
                    "points": [{k: v for k, v in p.items() if k != "test_gold"} for p in c.points]} for c in found],
        "fits": fits(found),
        "matched": summary_rows(chosen, resamples),
        "pairs": pairwise(chosen, resamples),
    }
