"""The comparison's plots: each method's gold reward against KL over training with gold at matched KL and its
95% band, and the pairwise probability-of-improvement matrix at each KL budget."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from aligner.bench import stats
from aligner.bench.plots import legend_outside, save_figure, style


def frontier(comparison: dict, path: Path) -> None:
    """Left: every evaluation point of every run (faint) and the fitted Gao curve on the mean base gold (dashed).
    Right: gold on the test prompts at each KL budget, mean over seeds with its 95% bootstrap band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (points_ax, matched_ax) = plt.subplots(1, 2, figsize=(13, 4.8))
    methods = sorted({c["method"] for c in comparison["curves"]})
    for method in methods:
        look = style(method)
        runs = [c for c in comparison["curves"] if c["method"] == method]
        for run in runs:
            kl = [p["kl"] for p in run["points"]]
            gold = [p["gold"] for p in run["points"]]
            points_ax.plot(kl, gold, color=look["color"], alpha=0.25, linewidth=0.8)
            points_ax.scatter(kl, gold, color=look["color"], marker=look["marker"], alpha=0.35, s=14)
        fit = comparison["fits"].get(method)
        starts = [p["gold"] for r in runs for p in r["points"] if p["step"] == 0]
        if fit is not None and starts:
            grid = np.concatenate([np.linspace(0, 1, 20), np.geomspace(1, max(fit["max_kl"], 1.0), 80)])
            points_ax.plot(grid, np.mean(starts) + stats.gao_curve(fit, grid), color=look["color"], linestyle="--",
                           linewidth=1.5)
        rows = sorted((r for r in comparison["matched"] if r["method"] == method), key=lambda r: r["budget"])
        if rows:
            budgets = [r["budget"] for r in rows]
            matched_ax.plot(budgets, [r["gold_test_mean"] for r in rows], label=method, **look)
            matched_ax.fill_between(budgets, [r["low"] for r in rows], [r["high"] for r in rows],
                                    color=look["color"], alpha=0.12)
    points_ax.set_xscale("symlog", linthresh=1.0)  # a collapsing run's KL can be 100x the others'
    points_ax.set_xlabel("KL(policy || reference), nats per response (linear below 1, log above)")
    points_ax.set_ylabel("gold reward, all held-out prompts")
    points_ax.set_title("Every evaluation point; dashed: Gao et al.'s form fitted")
    points_ax.grid(alpha=0.3)
    matched_ax.set_xscale("log", base=2)
    matched_ax.set_xlabel("KL budget (chosen on the selection prompts)")
    matched_ax.set_ylabel("gold reward, test prompts")
    matched_ax.set_title("Gold at matched KL: mean over seeds, 95% band")
    matched_ax.grid(alpha=0.3)
    legend_outside(matched_ax)
    save_figure(fig, path)


def improvement_matrix(comparison: dict, path: Path) -> None:
    """P(row method's run beats column method's run) on the test prompts, one panel per KL budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budgets = comparison["budgets"]
    methods = sorted({r["method"] for r in comparison["matched"]})
    if not methods:
        return
    size = 0.42 * len(methods) + 1.5
    fig, axes = plt.subplots(1, len(budgets), figsize=(size * len(budgets) + 1, size), squeeze=False)
    for ax, budget in zip(axes[0], budgets):
        matrix = np.full((len(methods), len(methods)), np.nan)
        for pair in (p for p in comparison["pairs"] if p["budget"] == budget):
            i, j = methods.index(pair["a"]), methods.index(pair["b"])
            matrix[i, j] = pair["probability_of_improvement"]
            matrix[j, i] = 1 - pair["probability_of_improvement"]
        image = ax.imshow(matrix, vmin=0, vmax=1, cmap="RdBu_r")
        ax.set_xticks(range(len(methods)), methods, rotation=90, fontsize=7)
        ax.set_yticks(range(len(methods)), methods, fontsize=7)
        ax.set_title(f"KL <= {budget:g}", fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), shrink=0.8, label="P(row beats column)")
    save_figure(fig, path)
