"""The comparison as markdown: gold at matched KL, the pairwise verdicts, and the fitted frontiers."""

from __future__ import annotations


def _interval(low: float, high: float, digits: int = 3) -> str:
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


def matched_table(comparison: dict) -> str:
    head = ("| KL budget | method | seeds | gold, test prompts: mean [95% CI] | IQM over seeds | KL, test prompts "
            "| steps chosen |")
    lines = [head, "|" + "|".join([" --- "] * 7) + "|"]
    for r in comparison["matched"]:
        lines.append(f"| {r['budget']:g} | {r['method']} | {r['seeds']} | {r['gold_test_mean']:.3f} "
                     f"{_interval(r['low'], r['high'])} | {r['gold_test_iqm']:.3f} | {r['kl_test_mean']:.2f} "
                     f"| {', '.join(map(str, r['steps']))} |")
    return "\n".join(lines)


def verdict_table(comparison: dict, budget: float | None = None, decided_only: bool = False) -> str:
    """One row per pair of methods (at one budget, or at all): A - B with its interval, the Holm-corrected p-value,
    P(A > B) with its interval, and the verdict at 95%."""
    head = ("| KL budget | A | B | seeds | gold A - B [95% CI] | p (Holm) | P(A > B) [95% CI] | verdict |")
    lines = [head, "|" + "|".join([" --- "] * 8) + "|"]
    for p in comparison["pairs"]:
        if budget is not None and p["budget"] != budget:
            continue
        if decided_only and p["verdict"] == "indistinguishable":
            continue
        lines.append(f"| {p['budget']:g} | {p['a']} | {p['b']} | {p['seeds']} | {p['difference']:+.3f} "
                     f"{_interval(p['low'], p['high'])} | {p['p_holm']:.3g} | {p['probability_of_improvement']:.2f} "
                     f"[{p['improvement_low']:.2f}, {p['improvement_high']:.2f}] | {p['verdict']} |")
    return "\n".join(lines)


def verdict_counts(comparison: dict) -> str:
    """Per budget: how many pairs are decided, and which."""
    lines = []
    for budget in comparison["budgets"]:
        pairs = [p for p in comparison["pairs"] if p["budget"] == budget]
        decided = [p for p in pairs if p["verdict"] != "indistinguishable"]
        named = "; ".join(f"{p['verdict'].removesuffix(' better')} > "
                          f"{p['b'] if p['verdict'].startswith(p['a'] + ' ') else p['a']}" for p in decided)
        lines.append(f"- KL <= {budget:g}: {len(decided)} of {len(pairs)} pairs decided" + (f": {named}" if named
                                                                                           else ""))
    return "\n".join(lines)


def fits_table(comparison: dict) -> str:
    head = "| method | alpha | beta | points | R² | largest KL |"
    lines = [head, "|" + "|".join([" --- "] * 6) + "|"]
    for method, fit in sorted(comparison["fits"].items()):
        lines.append(f"| {method} | {fit['alpha']:+.4f} | {fit['beta']:+.4f} | {fit['points']} | {fit['r2']:.2f} "
                     f"| {fit['max_kl']:.2f} |")
    return "\n".join(lines)


def section(comparison: dict) -> str:
    """The comparison's part of results.md."""
    if not comparison["curves"]:
        return ""
    return (f"\n## Gold at matched KL\n\nFor each KL budget, each seed's evaluation point (over the method's runs: "
            f"strengths and checkpoints) with KL within the budget and the highest gold on the selection prompts; "
            f"its gold on the test prompts is reported ({comparison['split']}). Interval: bootstrap over seeds and "
            f"prompts within seeds.\n\n{matched_table(comparison)}\n\n## Which differences are real\n\n"
            f"Paired bootstrap over seeds and test prompts, {comparison['holm']}; P(A > B) is the probability "
            f"that a run of A beats a run of B (Agarwal et al. 2021).\n\n{verdict_counts(comparison)}\n\n"
            f"{verdict_table(comparison)}\n\n## Fitted frontiers\n\nGao et al. (2022)'s RL form, gold - gold at "
            f"step 0 = d (alpha - beta ln d) with d = sqrt(KL), least squares over every point with KL > 0; "
            f"descriptive for the offline methods.\n\n{fits_table(comparison)}\n")
