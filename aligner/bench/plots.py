"""The reward-KL frontier and the resource bars. Every method has its own colour and marker in every plot."""

from __future__ import annotations

import zlib
from pathlib import Path

from aligner.bench.compare import method_of

KNOWN_METHODS = ["base", "ppo-shared", "ppo-separate", "grpo", "rloo", "reinforce-pp", "dpo", "ipo", "simpo", "kto",
                 "orpo"]
"""The built-in methods, given fixed styles so a method looks the same in every plot of every report."""
COLOURS = ["#000000", "#1f77b4", "#aec7e8", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#17becf", "#bcbd22", "#7f7f7f", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5"]
MARKERS = ["X", "o", "s", "^", "v", "D", "P", "*", "h", "<", ">", "p", "d", "8", "H", "1"]


def style(method: str) -> dict:
    """Colour and marker of a method: fixed for the built-in ones, chosen by a stable hash of the name otherwise."""
    index = KNOWN_METHODS.index(method) if method in KNOWN_METHODS else \
        len(KNOWN_METHODS) + zlib.crc32(method.encode()) % (len(COLOURS) - len(KNOWN_METHODS))
    return {"color": COLOURS[index], "marker": MARKERS[index]}


def save_figure(fig, path: Path) -> None:
    """Writes `fig` to `path` through a temp file renamed once complete; a failed write (a full disk) leaves
    neither a partial image nor the temp file."""
    import matplotlib.pyplot as plt

    tmp = path.with_name(f".{path.name}.tmp.png")
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        plt.close(fig)
    tmp.replace(path)


def legend_outside(ax, fontsize: int = 8) -> None:
    """The legend to the right of the axes, never over the data."""
    ax.legend(fontsize=fontsize, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)


def reward_vs_kl(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    series: dict[str, list[dict]] = {}
    for row in rows:
        if row["gold_reward_mean"] is not None:
            series.setdefault(method_of(row), []).append(row)
    for name, points in sorted(series.items()):
        points.sort(key=lambda r: r["kl_mean"])
        ax.errorbar([p["kl_mean"] for p in points], [p["gold_reward_mean"] for p in points],
                    xerr=[p["kl_std"] or 0 for p in points], yerr=[p["gold_reward_std"] or 0 for p in points],
                    capsize=3, linestyle="-" if len(points) > 1 else "none", label=name, **style(name))
        for p in points:
            if p["sweep"]:
                ax.annotate(" ".join(f"{k}={v}" for k, v in p["sweep"].items()), (p["kl_mean"], p["gold_reward_mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("KL(policy || reference), nats per response")
    ax.set_ylabel("gold reward on held-out prompts")
    ax.set_title("Final policies: gold reward against KL (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    legend_outside(ax)
    fig.tight_layout()
    save_figure(fig, path)


def resources(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["peak_memory_mb_mean"] is not None]
    labels = [r["group"] for r in rows]
    fig, (tensors, mem, secs) = plt.subplots(1, 3, figsize=(14, 0.45 * len(rows) + 1.8))
    tensors.barh(labels, [r["peak_tensor_mb_mean"] or 0 for r in rows],
                 xerr=[r["peak_tensor_mb_std"] or 0 for r in rows])
    tensors.set_xlabel("peak tensor memory (MB)")
    mem.barh(labels, [r["peak_memory_mb_mean"] for r in rows], xerr=[r["peak_memory_mb_std"] or 0 for r in rows])
    mem.set_xlabel("peak process memory (MB)")
    secs.barh(labels, [r["train_seconds_mean"] for r in rows], xerr=[r["train_seconds_std"] or 0 for r in rows])
    secs.set_xlabel("train time (s)")
    for ax in (mem, secs):
        ax.set_yticklabels([])
    for ax in (tensors, mem, secs):
        ax.invert_yaxis()
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, path)


def reward_vs_compute(rows: list[dict], path: Path) -> None:
    """Gold reward against training compute (forward-token equivalents, see aligner.bench.results.compute)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for row in rows:
        if row["gold_reward_mean"] is None or not row.get("compute_mean"):
            continue
        look = style(method_of(row))
        if row["sweep"]:  # a swept strength: the method's colour, hollow
            look = {**look, "markerfacecolor": "none"}
        ax.errorbar([row["compute_mean"]], [row["gold_reward_mean"]], yerr=[row["gold_reward_std"] or 0],
                    capsize=3, linestyle="none", label=row["group"], **look)
    ax.set_xscale("log")
    ax.set_xlabel("training compute, forward-token equivalents (3 per trained token, 1 per generated token)")
    ax.set_ylabel("gold reward on held-out prompts")
    ax.set_title("Reward against compute (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    legend_outside(ax, fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
