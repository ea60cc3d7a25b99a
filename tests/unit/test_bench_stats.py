"""Benchmark statistics against hand-computed values, exact enumerations and slow, literal reference loops."""

import itertools
import math

import numpy as np
import pytest

from aligner.bench import stats


# --- iqm ---------------------------------------------------------------------------------------------------------

def test_iqm_cuts_a_quarter_from_each_end():
    assert stats.iqm([1, 2, 3, 4, 100]) == 3.0  # int(1.25) = 1 cut each end: mean of 2, 3, 4
    # sorted: -50 1 | 3 4 5 7 | 10 100, int(2.0) = 2 cut each end
    assert stats.iqm([10, 1, 7, 3, 100, -50, 5, 4]) == pytest.approx(4.75)
    # seven values: int(1.75) = 1 cut each end: mean of 1, 2, 3, 4, 50
    assert stats.iqm([0, 1, 2, 3, 4, 50, 1000]) == pytest.approx(12.0)


def test_iqm_of_fewer_than_four_values_is_the_mean():
    assert stats.iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)
    assert stats.iqm([7.5]) == 7.5


def test_iqm_rejects_empty_and_nan():
    with pytest.raises(ValueError):
        stats.iqm([])
    with pytest.raises(ValueError, match="NaN"):
        stats.iqm([1.0, float("nan"), 2.0, 3.0])


# --- holm --------------------------------------------------------------------------------------------------------

def test_holm_textbook_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 by monotonicity
    rows = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert [row["p_value"] for row in rows] == [0.01, 0.04, 0.03, 0.005]
    assert [row["adjusted"] for row in rows] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [row["reject"] for row in rows] == [True, False, False, True]


def test_holm_caps_at_one_and_handles_trivial_families():
    assert [row["adjusted"] for row in stats.holm([0.5, 0.6])] == [1.0, 1.0]
    assert stats.holm([0.04]) == [{"p_value": 0.04, "adjusted": 0.04, "reject": True}]
    assert stats.holm([]) == []
    with pytest.raises(ValueError):
        stats.holm([0.1, 1.5])


def slow_holm_rejections(p_values, alpha):
    """The step-down procedure as written in Holm 1979: reject in sorted order until p_(k) > alpha / (m - k + 1)."""
    m = len(p_values)
    rejected = [False] * m
    for k, index in enumerate(sorted(range(m), key=lambda i: p_values[i])):
        if p_values[index] > alpha / (m - k):
            break
        rejected[index] = True
    return rejected


def test_holm_matches_step_down_and_is_monotone():
    rng = np.random.default_rng(3)
    for _ in range(200):
        p_values = (rng.uniform(0, 0.08, size=rng.integers(1, 9))).tolist()
        rows = stats.holm(p_values, alpha=0.05)
        assert [row["reject"] for row in rows] == slow_holm_rejections(p_values, 0.05)
        in_sorted_order = [row["adjusted"] for row in sorted(rows, key=lambda row: row["p_value"])]
        assert in_sorted_order == sorted(in_sorted_order)
        assert all(row["adjusted"] >= row["p_value"] for row in rows)


# --- probability of improvement ----------------------------------------------------------------------------------

def test_probability_of_improvement_hand_computed_with_ties():
    # a=1 beats only 0 (1); a=2 ties both 2s and beats 0 (2); a=3 beats all (3): 6 of 9 pairs
    result = stats.probability_of_improvement([1, 2, 3], [2, 2, 0], resamples=500)
    assert result["probability"] == pytest.approx(6 / 9)
    assert 0 <= result["low"] <= result["probability"] <= result["high"] <= 1
    reverse = stats.probability_of_improvement([2, 2, 0], [1, 2, 3], resamples=500)
    assert reverse["probability"] == pytest.approx(3 / 9)


def test_probability_of_improvement_of_identical_runs_is_one_half():
    result = stats.probability_of_improvement([4.0, 4.0], [4.0, 4.0, 4.0], resamples=200)
    assert result == {"probability": 0.5, "low": 0.5, "high": 0.5}


def slow_probability_of_improvement(a, b, resamples, seed, confidence):
    """Resample each algorithm's runs on its own, drawing as stats does (a's indices, then b's), and count pairs."""
    rng = np.random.default_rng(seed)
    a_indices = rng.integers(0, len(a), size=(resamples, len(a)))
    b_indices = rng.integers(0, len(b), size=(resamples, len(b)))
    probabilities = []
    for r in range(resamples):
        wins = 0.0
        for i in a_indices[r]:
            for j in b_indices[r]:
                wins += 1.0 if a[i] > b[j] else 0.5 if a[i] == b[j] else 0.0
        probabilities.append(wins / (len(a) * len(b)))
    tail = (1 - confidence) / 2
    return np.quantile(probabilities, [tail, 1 - tail])


def test_probability_of_improvement_interval_matches_slow_reference():
    a, b = [0.3, 1.2, 0.7, 0.7], [0.5, 0.7, 0.1]
    result = stats.probability_of_improvement(a, b, resamples=300, seed=5, confidence=0.9)
    low, high = slow_probability_of_improvement(a, b, resamples=300, seed=5, confidence=0.9)
    assert (result["low"], result["high"]) == (pytest.approx(low), pytest.approx(high))


def test_probability_of_improvement_rejects_bad_input():
    with pytest.raises(ValueError):
        stats.probability_of_improvement([[1.0, 2.0]], [1.0])
    with pytest.raises(ValueError):
        stats.probability_of_improvement([], [1.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.probability_of_improvement([1.0, float("nan")], [1.0])


# --- paired bootstrap --------------------------------------------------------------------------------------------

def slow_paired_bootstrap(a, b, resamples, seed, confidence, chunk):
    """Literal loops over resamples, seed slots and prompt slots; the random indices are drawn in stats' order
    (per chunk of resamples: seed indices, then prompt indices) so the output must agree exactly."""
    rng = np.random.default_rng(seed)
    seeds = len(a)
    differences = []
    for start in range(0, resamples, chunk):
        count = min(chunk, resamples - start)
        seed_indices = rng.integers(0, seeds, size=(count, seeds))
        if a.ndim == 2:
            prompt_indices = rng.integers(0, a.shape[1], size=(count, seeds, a.shape[1]))
        for r in range(count):
            a_total = b_total = 0.0
            cells = 0
            for slot, s in enumerate(seed_indices[r]):
                for p in (prompt_indices[r, slot] if a.ndim == 2 else [None]):
                    a_total += a[s] if p is None else a[s, p]
                    b_total += b[s] if p is None else b[s, p]
                    cells += 1
            differences.append(a_total / cells - b_total / cells)
    differences = np.array(differences)
    tail = (1 - confidence) / 2
    low, high = np.quantile(differences, [tail, 1 - tail])
    share_at_most = (np.sum(differences <= 0) + 1) / (resamples + 1)
    share_at_least = (np.sum(differences >= 0) + 1) / (resamples + 1)
    return low, high, min(1.0, 2 * min(share_at_most, share_at_least))


@pytest.mark.parametrize("shape, chunk", [((3, 4), None), ((3, 4), 7), ((4,), None)])
def test_paired_bootstrap_matches_slow_reference(monkeypatch, shape, chunk):
    rng = np.random.default_rng(11)
    a = rng.normal(size=shape)
    b = a + rng.normal(0.05, 0.3, size=shape)
    resamples = 250
    per_resample = a.size
    if chunk is not None:  # several chunks: the random stream must still be drawn in the documented order
        monkeypatch.setattr(stats, "GATHERED_PER_CHUNK", chunk * per_resample)
    result = stats.paired_bootstrap(a, b, resamples=resamples, seed=9, confidence=0.8)
    low, high, p_value = slow_paired_bootstrap(a, b, resamples, 9, 0.8, chunk or resamples)
    assert result["low"] == pytest.approx(low, abs=1e-12)
    assert result["high"] == pytest.approx(high, abs=1e-12)
    assert result["p_value"] == pytest.approx(p_value)
    assert result["difference"] == pytest.approx(a.mean() - b.mean())
    assert result["resamples"] == resamples


def test_paired_bootstrap_matches_the_enumerated_distribution():
    """2 seeds x 2 prompts: 4 seed draws x 4 prompt draws per slot x 4 = 64 equally likely resamples."""
    a = np.array([[1.0, -3.0], [2.0, 0.5]])
    b = np.zeros((2, 2))
    exact = np.array([(a[s1, p11] + a[s1, p12] + a[s2, p21] + a[s2, p22]) / 4
                      for s1, s2, p11, p12, p21, p22 in itertools.product((0, 1), repeat=6)])
    exact.sort()

    def exact_quantile(level):
        return exact[math.ceil(level * exact.size) - 1]

    result = stats.paired_bootstrap(a, b, resamples=20_000, seed=1, confidence=0.9)
    exact_p = min(1.0, 2 * min(np.mean(exact <= 0), np.mean(exact >= 0)))
    assert 0.1 < exact_p < 0.9  # a p-value with room to be wrong in both directions
    assert result["p_value"] == pytest.approx(exact_p, abs=0.02)
    assert exact_quantile(0.05 - 0.01) <= result["low"] <= exact_quantile(0.05 + 0.01)
    assert exact_quantile(0.95 - 0.01) <= result["high"] <= exact_quantile(0.95 + 0.01)


def test_paired_bootstrap_constant_shift_has_a_point_interval():
    b = np.random.default_rng(2).normal(size=(5, 16))
    result = stats.paired_bootstrap(b + 0.5, b, resamples=2000)
    assert result["difference"] == pytest.approx(0.5)
    assert result["low"] == pytest.approx(0.5)
    assert result["high"] == pytest.approx(0.5)
    assert result["p_value"] == pytest.approx(2 / 2001)  # no resample at or below zero: only the +1 correction


def test_paired_bootstrap_of_identical_scores_is_indistinguishable():
    a = np.random.default_rng(4).normal(size=(5, 16))
    result = stats.paired_bootstrap(a, a.copy(), resamples=2000)
    assert result["p_value"] == 1.0
    assert result["low"] <= 0 <= result["high"]
    assert result["difference"] == 0.0


def test_paired_bootstrap_separates_clearly_different_algorithms():
    rng = np.random.default_rng(6)
    b = rng.normal(size=(5, 64))
    a = b + rng.normal(0.4, 0.2, size=(5, 64))
    result = stats.paired_bootstrap(a, b)
    assert result["p_value"] < 0.01
    assert 0 < result["low"] < result["difference"] < result["high"]
    flipped = stats.paired_bootstrap(b, a)
    assert flipped["p_value"] < 0.01
    assert flipped["high"] < 0


def test_paired_bootstrap_p_value_is_two_sided():
    """Swapping A and B negates every resampled difference; a two-sided p-value must not change, a one-sided one
    would turn into one minus itself."""
    rng = np.random.default_rng(8)
    b = rng.normal(size=(4, 32))
    a = b + rng.normal(0.1, 1.0, size=(4, 32))
    forward = stats.paired_bootstrap(a, b, resamples=4000, seed=3)
    backward = stats.paired_bootstrap(b, a, resamples=4000, seed=3)
    assert 0.05 < forward["p_value"] < 0.95
    assert forward["p_value"] == pytest.approx(backward["p_value"])
    assert (forward["low"], forward["high"]) == (pytest.approx(-backward["high"]), pytest.approx(-backward["low"]))


def test_paired_bootstrap_rejects_nan_and_bad_shapes():
    a = np.ones((3, 4))
    holed = a.copy()
    holed[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_bootstrap(holed, a)
    with pytest.raises(ValueError, match="NaN"):
        stats.paired_bootstrap(a, holed)
    with pytest.raises(ValueError, match="shape"):
        stats.paired_bootstrap(a, np.ones((3, 5)))
    with pytest.raises(ValueError, match="shape"):
        stats.paired_bootstrap(np.ones((2, 2, 2)), np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="shape"):
        stats.paired_bootstrap(np.ones((0, 4)), np.ones((0, 4)))


# --- verdict -----------------------------------------------------------------------------------------------------

def test_verdict_names_a_winner_only_when_rejected():
    assert stats.verdict({"difference": 0.3}, True, "dpo", "ppo") == "dpo better"
    assert stats.verdict({"difference": -0.3}, True, "dpo", "ppo") == "ppo better"
    assert stats.verdict({"difference": 0.3}, False, "dpo", "ppo") == "indistinguishable"
    assert stats.verdict({"difference": 0.0}, True, "dpo", "ppo") == "indistinguishable"


# --- Gao et al. fit ----------------------------------------------------------------------------------------------

def gao_gain(kl, alpha, beta):
    d = np.sqrt(kl)
    return d * (alpha - beta * np.log(d))


def test_fit_gao_recovers_noise_free_parameters():
    kl = np.array([0.5, 1.0, 2.0, 4.0, 9.0, 16.0, 30.0])
    fit = stats.fit_gao(kl, gao_gain(kl, 1.5, 0.4))
    assert fit["alpha"] == pytest.approx(1.5, abs=1e-9)
    assert fit["beta"] == pytest.approx(0.4, abs=1e-9)
    assert fit["points"] == 7
    assert fit["r2"] == pytest.approx(1.0)


def test_fit_gao_recovers_noisy_parameters_approximately():
    rng = np.random.default_rng(12)
    kl = np.repeat([0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0], 5)
    gain = gao_gain(kl, 1.2, 0.3) + rng.normal(0, 0.05, size=kl.size)
    fit = stats.fit_gao(kl, gain)
    assert fit["alpha"] == pytest.approx(1.2, abs=0.05)
    assert fit["beta"] == pytest.approx(0.3, abs=0.03)
    predicted = stats.gao_curve(fit, kl)
    assert fit["r2"] == pytest.approx(1 - np.sum((gain - predicted) ** 2) / np.sum((gain - gain.mean()) ** 2))
    assert 0.9 < fit["r2"] < 1.0


def test_fit_gao_leaves_out_zero_negative_and_non_finite_kl():
    kl = np.array([1.0, 4.0, 9.0])
    clean = stats.fit_gao(kl, gao_gain(kl, 2.0, 0.5))
    with_junk = stats.fit_gao([0.0, -1.0, np.nan, 1.0, 4.0, 9.0, 16.0],
                              [50.0, -80.0, 3.0, *gao_gain(kl, 2.0, 0.5), np.inf])
    assert with_junk["points"] == 3
    assert with_junk["alpha"] == pytest.approx(clean["alpha"])
    assert with_junk["beta"] == pytest.approx(clean["beta"])


def test_fit_gao_returns_none_without_two_distinct_points():
    assert stats.fit_gao([4.0], [1.0]) is None
    assert stats.fit_gao([0.0, 4.0], [0.0, 1.0]) is None
    assert stats.fit_gao([4.0, 4.0, 4.0], [1.0, 1.1, 0.9]) is None  # one distance: alpha and beta not separable
    with pytest.raises(ValueError):
        stats.fit_gao([1.0, 2.0], [1.0])


def test_gao_curve_values():
    fit = {"alpha": 2.0, "beta": 0.5}
    curve = stats.gao_curve(fit, [0.0, 1.0, 4.0, -1.0])
    assert curve[0] == 0.0
    assert curve[1] == pytest.approx(2.0)  # d = 1, ln d = 0
    assert curve[2] == pytest.approx(2 * (2.0 - 0.5 * math.log(2)))
    assert math.isnan(curve[3])


# --- gold at a KL budget -----------------------------------------------------------------------------------------

def point(step, kl_selection, gold_selection, gold_test=0.0):
    return {"step": step, "kl_selection": kl_selection, "gold_selection": gold_selection, "gold_test": gold_test,
            "kl_test": kl_selection}


def test_select_at_budget_picks_best_selection_gold_within_budget():
    points = [point(0, 0.0, 0.1), point(10, 2.0, 0.5), point(20, 4.0, 0.7), point(30, 8.0, 0.9)]
    assert stats.select_at_budget(points, 5.0)["step"] == 20
    assert stats.select_at_budget(points, 4.0)["step"] == 20  # the budget is inclusive
    assert stats.select_at_budget(points, 3.9)["step"] == 10
    assert stats.select_at_budget(points, 100.0) is points[3]


def test_select_at_budget_breaks_ties_by_the_earlier_step():
    points = [point(30, 1.0, 0.6), point(10, 2.0, 0.6), point(20, 0.5, 0.4)]
    assert stats.select_at_budget(points, 5.0)["step"] == 10


def test_select_at_budget_returns_none_without_extrapolating():
    assert stats.select_at_budget([point(10, 2.0, 0.5), point(20, 3.0, 0.6)], 1.0) is None
    assert stats.select_at_budget([], 1.0) is None


def test_select_at_budget_skips_unscored_points():
    points = [point(10, 1.0, float("nan")), point(20, float("nan"), 0.9), point(30, 1.0, 0.3)]
    assert stats.select_at_budget(points, 2.0)["step"] == 30


def test_select_at_budget_ignores_test_gold():
    points = [point(10, 1.0, 0.5, gold_test=0.5), point(20, 1.5, 0.2, gold_test=99.0)]
    assert stats.select_at_budget(points, 2.0)["step"] == 10


class TestGoldHidden(dict):
    __test__ = False

    def __getitem__(self, key):
        if key in ("gold_test", "kl_test"):
            raise AssertionError(f"select_at_budget read {key}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def test_select_at_budget_never_reads_test_keys():
    points = [TestGoldHidden(point(10, 1.0, 0.5)), TestGoldHidden(point(20, 1.5, 0.7))]
    assert stats.select_at_budget(points, 2.0)["step"] == 20
