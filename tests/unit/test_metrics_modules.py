"""aligner's metrics as `evaluate` modules: each one's outputs against values worked out by hand, loaded the way the
benchmark loads them (`aligner.metrics.load`, offline, from the package's folders)."""

from __future__ import annotations

import math
import socket
import tomllib
from fnmatch import fnmatch

from pathlib import Path

import pytest

from aligner import metrics
from conftest import REPO


@pytest.fixture
def evaluate_cache():
    """evaluate's caches, which tests/conftest.py points at one temporary folder for the whole session (before
    evaluate is first imported: it reads them then), never the user's home. Moving them per test would strand the
    module copies evaluate has already imported from the first folder."""
    import evaluate.config

    cache = Path(evaluate.config.HF_MODULES_CACHE)
    assert "aligner-tests-evaluate-" in str(cache), cache
    yield cache.parent


pytestmark = pytest.mark.usefixtures("evaluate_cache")


def test_names_and_paths():
    assert metrics.NAMES == ("diversity", "gold_reward", "kl", "win_rate")
    assert metrics.path("kl") == metrics.MODULES_DIR / "kl"
    assert (metrics.path("kl") / "kl.py").is_file()
    with pytest.raises(ValueError, match=r"unknown metric 'kl_div'; aligner's metrics: diversity, gold_reward, kl, "
                                         r"win_rate"):
        metrics.path("kl_div")


@pytest.mark.parametrize("name", metrics.NAMES)
def test_modules_are_self_contained_and_ship_in_the_wheel(name):
    """evaluate copies the module file alone and reads its imports with a regex (one import per line), so a module
    imports only libraries, none of aligner; and pyproject's package-data carries it into the wheel."""
    from evaluate.loading import get_imports

    script = metrics.path(name) / f"{name}.py"
    imported = {found[1] for found in get_imports(str(script))}
    assert {found[0] for found in get_imports(str(script))} == {"library"}
    assert imported <= {"datasets", "evaluate", "itertools", "math", "statistics"}, imported
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch(f"{name}/{name}.py", pattern) for pattern in package_data["aligner.metrics"])


@pytest.mark.parametrize("name", metrics.NAMES)
def test_each_module_describes_itself(name):
    module = metrics.load(name)
    assert module.name == name and module.description.strip() and "predictions" in module.inputs_description
    assert module.citation.strip() or name == "win_rate"


def test_gold_reward():
    result = metrics.load("gold_reward").compute(predictions=[1.0, 2.0, 4.0, 5.0])
    # mean 3; squared deviations 4, 1, 1, 4: population variance 10 / 4
    assert result == {"gold_reward": 3.0, "gold_reward_std": pytest.approx(math.sqrt(2.5)), "count": 4}
    assert metrics.load("gold_reward").compute(predictions=[]) == {"gold_reward": None, "gold_reward_std": None,
                                                                    "count": 0}


def test_win_rate_counts_ties_half():
    result = metrics.load("win_rate").compute(predictions=[2.0, 1.0, 0.0, 3.0, 5.0],
                                              references=[1.0, 1.0, 1.0, 3.0, 4.0])
    assert result == {"win_rate": pytest.approx((1 + 0.5 + 0 + 0.5 + 1) / 5), "count": 5}
    assert metrics.load("win_rate").compute(predictions=[0.5], references=[0.5])["win_rate"] == 0.5


def test_kl_mean_and_standard_error():
    kl = metrics.load("kl")
    result = kl.compute(predictions=[0.5, 1.5, 4.0])
    # mean 2; squared deviations 2.25, 0.25, 4: sample variance 6.5 / 2 = 3.25; sem = sqrt(3.25) / sqrt(3)
    assert result == {"kl": pytest.approx(2.0), "kl_sem": pytest.approx(math.sqrt(3.25) / math.sqrt(3))}
    assert kl.compute(predictions=[-0.25]) == {"kl": -0.25, "kl_sem": 0.0}


def test_distinct_n_over_all_responses():
    result = metrics.load("diversity").compute(predictions=["the cat sat", "the cat ran"], references=[0, 1])
    # words: the cat sat the cat ran: 4 distinct of 6; bigrams: the-cat cat-sat the-cat cat-ran: 3 of 4
    assert result == {"distinct_1": pytest.approx(4 / 6), "distinct_2": pytest.approx(3 / 4),
                      "self_similarity": None, "response_words": 3.0}
    no_bigrams = metrics.load("diversity").compute(predictions=["", "one"], references=[0, 0])
    assert no_bigrams["distinct_1"] == 1.0 and no_bigrams["distinct_2"] == 0.0
    assert no_bigrams["self_similarity"] == 1.0, "two responses without a bigram count as alike"
    one_empty = metrics.load("diversity").compute(predictions=["", "one two"], references=[0, 0])
    assert one_empty["self_similarity"] == 0.0


@pytest.mark.parametrize("groups", [["p0", "p0", "p0", "p1", "p1", "p2"], [7, 7, 7, 3, 3, 0]])
def test_self_similarity_within_groups(groups):
    responses = ["a b c", "a b d", "x", "y", "", "z w"]
    result = metrics.load("diversity").compute(predictions=responses, references=groups)
    # group of 3: {ab, bc} vs {ab, bd}: 1/3; each vs {} (x): 0; mean 1/9. group of 2: both empty: 1.
    # the group of one (z w) is left out: (1/9 + 1) / 2
    assert result["self_similarity"] == pytest.approx((1 / 9 + 1) / 2)
    assert result["response_words"] == pytest.approx((3 + 3 + 1 + 1 + 0 + 2) / 6)


def test_string_group_ids_stay_strings():
    """"0" and "00" are two prompts: the ids are not read as numbers."""
    result = metrics.load("diversity").compute(predictions=["a b", "a b"], references=["0", "00"])
    assert result["self_similarity"] is None


def test_load_works_offline_with_every_socket_refused(monkeypatch, evaluate_cache):
    def refuse(self, address):
        raise OSError(f"network blocked in this test: {address!r}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0] if a else None))
    for name in metrics.NAMES:
        assert metrics.load(name).name == name
    assert metrics.load("kl").compute(predictions=[1.0, 3.0]) == {"kl": 2.0, "kl_sem": 1.0}
    copies = list((evaluate_cache / "modules").rglob("kl.py"))
    assert copies, "the module's copy lies in the test session's cache, not the user's"
