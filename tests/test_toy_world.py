import json
import random

import pytest
import torch

from aligner.toy import grammar, world
from aligner.toy.gold import vader_compound
from aligner.toy.tokenizer import build_tokenizer


def test_grammar_is_seeded():
    assert grammar.corpus(50, seed=3) == grammar.corpus(50, seed=3)
    assert grammar.corpus(50, seed=3) != grammar.corpus(50, seed=4)


def test_grammar_has_the_structure_the_gold_scorer_reacts_to():
    texts = grammar.corpus(3000, seed=0)
    words = {w for t in texts for w in t.split()}
    assert len(words) > 200, "hundreds of words"
    assert {"not", "very", "but"} <= words
    assert any(" but " in t for t in texts)
    scores = vader_compound(texts)
    assert min(scores) < -0.5 and max(scores) > 0.5, "reviews span negative to positive"
    assert vader_compound(["the plot was good ."])[0] > 0 > vader_compound(["the plot was not good ."])[0]


def test_tokenizer_covers_the_grammar_and_round_trips():
    tok = build_tokenizer()
    for text in grammar.corpus(200, seed=1):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text
    assert len({tok.pad_token_id, tok.eos_token_id, tok.bos_token_id}) == 3


def test_preference_pairs_take_best_and_worst_and_skip_ties():
    rows = world.preference_pairs(
        ["p1", "p2", "p3"],
        [[" it was awful .", " it was great .", " it was fine ."], [" a film .", " a movie ."], [" ", " good ."]],
        min_margin=0.1,
    )
    assert len(rows) == 1, "p2 has no margin; p3 has one non-empty candidate"
    assert (rows[0]["chosen"], rows[0]["rejected"]) == (" it was great .", " it was awful .")


@pytest.mark.slow
def test_small_world_build_is_deterministic(tmp_path):
    sizes = dict(corpus_size=640, n_eval_prompts=8, samples_per_prompt=2, prefix_corpus_size=60, log=lambda m: None)
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    world.build(a, seed=5, **sizes)
    world.build(b, seed=5, **sizes)
    world.build(c, seed=6, **sizes)
    for name in ("preferences.jsonl", "eval_prompts.jsonl", "model/model.safetensors"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "preferences.jsonl").read_text() != (c / "preferences.jsonl").read_text()
    train = {json.loads(line)["prompt"] for line in (a / "preferences.jsonl").read_text().splitlines()}
    held = {json.loads(line)["prompt"] for line in (a / "eval_prompts.jsonl").read_text().splitlines()}
    assert train and held and not train & held, "held-out prompts never appear in training"


def test_default_world_is_usable(toy_world):
    stats = json.loads((toy_world.root / "world.json").read_text())
    assert stats["parameters"] > 1_000_000
    assert stats["pretrain_loss_last"] < stats["pretrain_loss_first"] - 2
    assert stats["pairs"] > 1000 and stats["eval_prompts"] == 256


def test_default_world_matches_the_reference_checksums(toy_world):
    assert world.checksums(toy_world.root) == world.CHECKSUMS[0]


@pytest.mark.slow
def test_small_world_build_is_the_same_with_one_and_two_threads(tmp_path):
    sizes = dict(corpus_size=640, n_eval_prompts=8, samples_per_prompt=2, prefix_corpus_size=60, log=lambda m: None)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            world.build(tmp_path / str(threads), seed=5, **sizes)
    finally:
        torch.set_num_threads(before)
    assert world.checksums(tmp_path / "1") == world.checksums(tmp_path / "2")


def test_two_processes_needing_the_world_build_it_once(tmp_path, monkeypatch):
    """The second caller waits on the first one's lock and then finds the world built."""
    import threading
    import time

    monkeypatch.setenv("ALIGNER_CACHE", str(tmp_path))
    builds, messages = [], []

    def slow_build(root, seed=0, log=print):
        builds.append(seed)
        time.sleep(0.5)
        (root / "world.json").write_text("{}")

    monkeypatch.setattr(world, "build", slow_build)
    first = threading.Thread(target=world.ensure, kwargs={"log": messages.append})
    first.start()
    time.sleep(0.1)
    second = world.ensure(log=messages.append)
    first.join()
    assert builds == [0]
    assert second.root == tmp_path / f"toy-{world.WORLD_VERSION}-seed0" and (second.root / "world.json").is_file()
    assert any("waiting for process" in m for m in messages), messages
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".toy-{world.WORLD_VERSION}-seed0.lock",
                                                          f"toy-{world.WORLD_VERSION}-seed0"]
