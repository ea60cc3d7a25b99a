"""The statistics behind "which algorithm wins": robust means, paired bootstrap intervals, multiple-comparison
correction, Gao et al.'s over-optimisation curve, and gold at a KL budget.

Conventions follow Agarwal et al. 2021 ("Deep RL at the edge of the statistical precipice", rliable) for IQM,
probability of improvement and stratified bootstrap intervals, and Gao et al. 2022 ("Scaling laws for reward model
overoptimization") for the RL curve. numpy only: scipy is not a dependency.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

# A bootstrap gathers resamples x seeds x prompts values; this many per chunk keeps memory near 32 MB whatever the
# suite's size (indices and gathered floats, 8 bytes each).
GATHERED_PER_CHUNK = 1 << 21


def iqm(values) -> float:
    """Interquartile mean as rliable defines it, scipy.stats.trim_mean(values, 0.25): int(n/4) values are cut from
    each end of the sorted values, so with n < 4 nothing is cut and it is the plain mean."""
    sorted_values = np.sort(_finite(values, "iqm values").ravel())
    if sorted_values.size == 0:
        raise ValueError("iqm of no values")
    cut = int(0.25 * sorted_values.size)
    return float(sorted_values[cut:sorted_values.size - cut].mean())


def paired_bootstrap(a, b, *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> dict:
    """Interval and two-sided p-value for mean(a) - mean(b), where a[s, p] and b[s, p] score the same seed index and
    the same held-out prompt.

    Two-level bootstrap: seeds are drawn with replacement, then prompts within each drawn seed, with the same indices
    for a and b so the pairing holds: seeds carry the training noise, prompts the finite test set's. 1-D inputs are
    one score per seed and only seeds are resampled. The interval is percentile (numpy's linear quantiles); the
    p-value is min(1, 2 * min(share <= 0, share >= 0)) with each share (count + 1) / (resamples + 1), so never 0.
    """
    a, b = _finite(a, "a"), _finite(b, "b")
    if a.shape != b.shape or a.ndim not in (1, 2) or a.size == 0:
        raise ValueError(f"a and b must share one non-empty shape [seeds] or [seeds, prompts]; got {a.shape} "
                         f"and {b.shape}")
    _check_resampling(resamples, confidence)
    score_differences = a - b
    rng = np.random.default_rng(seed)
    seeds = a.shape[0]
    per_resample = a.size
    resampled = []
    for count in _chunk_sizes(resamples, per_resample):
        seed_indices = rng.integers(0, seeds, size=(count, seeds))
        if a.ndim == 1:
            resampled.append(score_differences[seed_indices].mean(axis=1))
        else:
            prompt_indices = rng.integers(0, a.shape[1], size=(count, seeds, a.shape[1]))
            resampled.append(score_differences[seed_indices[:, :, None], prompt_indices].mean(axis=(1, 2)))
    differences = np.concatenate(resampled)
    at_most_zero = (np.count_nonzero(differences <= 0) + 1) / (resamples + 1)
    at_least_zero = (np.count_nonzero(differences >= 0) + 1) / (resamples + 1)
    low, high = _percentile_interval(differences, confidence)
    return {"difference": float(a.mean() - b.mean()), "low": low, "high": high,
            "p_value": float(min(1.0, 2 * min(at_most_zero, at_least_zero))), "resamples": resamples}


def probability_of_improvement(a, b, *, resamples: int = 10_000, seed: int = 0, confidence: float = 0.95) -> dict:
    """rliable's P(X > Y): the chance a random run of A scores above a random run of B, ties counting half (the
    Mann-Whitney U statistic over len(a) * len(b)). The interval resamples a's runs and b's runs independently
    (rliable's stratified bootstrap), since the two algorithms' runs are not paired here."""
    a, b = _finite(a, "a"), _finite(b, "b")
    if a.ndim != 1 or b.ndim != 1 or a.size == 0 or b.size == 0:
        raise ValueError(f"a and b must be non-empty 1-D arrays of per-run scores; got {a.shape} and {b.shape}")
    _check_resampling(resamples, confidence)
    rng = np.random.default_rng(seed)
    resampled = []
    for count in _chunk_sizes(resamples, a.size * b.size):
        a_runs = a[rng.integers(0, a.size, size=(count, a.size))]
        b_runs = b[rng.integers(0, b.size, size=(count, b.size))]
        resampled.append(_pairwise_wins(a_runs[:, :, None], b_runs[:, None, :]).mean(axis=(1, 2)))
    low, high = _percentile_interval(np.concatenate(resampled), confidence)
    return {"probability": float(_pairwise_wins(a[:, None], b[None, :]).mean()), "low": low, "high": high}


def holm(p_values, alpha: float = 0.05) -> list[dict]:
    """Holm-Bonferroni step-down: controls the family-wise error over every pairwise comparison in a report without
    Bonferroni's loss of power. Adjusted p-values are made monotone in sorted order, so rejecting by adjusted <= alpha
    is the same as the step-down procedure. Equal p-values keep their input order."""
    p = np.asarray(p_values, dtype=float).ravel()
    if np.isnan(p).any() or (p < 0).any() or (p > 1).any():
        raise ValueError(f"p-values must lie in [0, 1]; got {p.tolist()}")
    order = np.argsort(p, kind="stable")
    multipliers = p.size - np.arange(p.size)
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(np.minimum(1.0, multipliers * p[order]))
    return [{"p_value": float(raw), "adjusted": float(adj), "reject": bool(adj <= alpha)}
            for raw, adj in zip(p, adjusted)]


def verdict(difference_ci: dict, reject: bool, a_name: str, b_name: str) -> str:
    """One phrase for the report: only a rejected null names a winner, chosen by the sign of the observed
    difference (a result of paired_bootstrap, A minus B)."""
    if reject and difference_ci["difference"] > 0:
        return f"{a_name} better"
    if reject and difference_ci["difference"] < 0:
        return f"{b_name} better"
    return "indistinguishable"


def fit_gao(kl, gain) -> dict | None:
    """Fits Gao et al.'s RL form gain = d * (alpha - beta * ln d), d = sqrt(KL), by least squares (linear in alpha and
    beta). gain is gold reward minus the initial policy's: the form has no intercept. KL <= 0 has no log and non-finite
    points carry nothing, so both are left out. r2 follows sklearn's r2_score when every gain is equal (1.0 for an
    exact fit, else 0.0)."""
    kl, gain = np.asarray(kl, dtype=float).ravel(), np.asarray(gain, dtype=float).ravel()
    if kl.shape != gain.shape:
        raise ValueError(f"kl and gain must have one length; got {kl.size} and {gain.size}")
    usable = np.isfinite(kl) & np.isfinite(gain) & (kl > 0)
    if np.count_nonzero(usable) < 2:
        return None
    distance, gain = np.sqrt(kl[usable]), gain[usable]
    design = np.column_stack([distance, -distance * np.log(distance)])
    (alpha, beta), _, rank, _ = np.linalg.lstsq(design, gain, rcond=None)
    if rank < 2:
        return None
    residual = float(np.sum((gain - design @ np.array([alpha, beta])) ** 2))
    spread = float(np.sum((gain - gain.mean()) ** 2))
    r2 = 1.0 - residual / spread if spread > 0 else (1.0 if residual == 0 else 0.0)
    return {"alpha": float(alpha), "beta": float(beta), "points": int(usable.sum()), "r2": r2}


def gao_curve(fit: dict, kl_values) -> np.ndarray:
    """The fitted gain at each KL; 0 at KL = 0 (the limit of d ln d), NaN where KL is negative."""
    kl = np.asarray(kl_values, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        distance = np.sqrt(kl)  # NaN for negative KL, and NaN carries through
        distance_log = np.where(distance > 0, distance * np.log(distance), 0.0)
    return fit["alpha"] * distance - fit["beta"] * distance_log


def select_at_budget(points: list[dict], budget: float) -> dict | None:
    """Gold at matched KL, chosen honestly: among one run's evaluation points with KL on the selection prompts within
    budget, the one with the highest gold on the selection prompts (the earlier step on ties). Only selection keys are
    read, so the caller's gold_test is an untouched estimate; None when no point is within budget (no extrapolation).
    """
    within = [point for point in points
              if point["kl_selection"] <= budget and not math.isnan(point["gold_selection"])]
    if not within:
        return None
    return min(within, key=lambda point: (-point["gold_selection"], point["step"]))


def _finite(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or infinite entries (shape {array.shape}); a prompt the judge did not "
                         "score must be dropped for both algorithms, or the run left out")
    return array


def _check_resampling(resamples: int, confidence: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1; got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1); got {confidence}")


def _chunk_sizes(resamples: int, per_resample: int) -> Iterator[int]:
    """Resamples per chunk, in drawing order; the random stream depends on these sizes."""
    step = max(1, GATHERED_PER_CHUNK // per_resample)
    for start in range(0, resamples, step):
        yield min(step, resamples - start)


def _percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def _pairwise_wins(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x > y) + 0.5 * (x == y)
