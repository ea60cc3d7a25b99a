"""The reward-KL frontier and the resource bars."""

from __future__ import annotations

from pathlib import Path


def _series_name(row: dict) -> str:
    return row["algorithm"] + (f" ({row['variant']})" if row["variant"] else "")


def reward_vs_kl(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    series: dict[str, list[dict]] = {}
    for row in rows:
        if row["gold_reward_mean"] is not None:
            series.setdefault(_series_name(row), []).append(row)
    for name, points in sorted(series.items()):
        points.sort(key=lambda r: r["kl_mean"])
        ax.errorbar([p["kl_mean"] for p in points], [p["gold_reward_mean"] for p in points],
                    xerr=[p["kl_std"] or 0 for p in points], yerr=[p["gold_reward_std"] or 0 for p in points],
                    marker="o", capsize=3, linestyle="-" if len(points) > 1 else "none", label=name)
        for p in points:
            if p["sweep"]:
                ax.annotate(" ".join(f"{k}={v}" for k, v in p["sweep"].items()), (p["kl_mean"], p["gold_reward_mean"]),
                            textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.set_xlabel("KL(policy || reference), nats per response")
    ax.set_ylabel("gold reward on held-out prompts")
    ax.set_title("Reward-KL frontier (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


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
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def reward_vs_compute(rows: list[dict], path: Path) -> None:
    """Gold reward against training compute (forward-token equivalents, see aligner.bench.results.compute)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        if row["gold_reward_mean"] is None or not row.get("compute_mean"):
            continue
        ax.errorbar([row["compute_mean"]], [row["gold_reward_mean"]], yerr=[row["gold_reward_std"] or 0],
                    marker="o", capsize=3, linestyle="none", label=row["group"])
    ax.set_xscale("log")
    ax.set_xlabel("training compute, forward-token equivalents (3 per trained token, 1 per generated token)")
    ax.set_ylabel("gold reward on held-out prompts")
    ax.set_title("Reward against compute (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
