import json

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


def test_default_world_matches_a_known_build(toy_world):
    """The build's code is unchanged: its files match the reference build or a known build of the same code on
    another processor (float arithmetic differs between CPU instruction sets; the prompts, pure Python, never do)."""
    built = world.checksums(toy_world.root)
    assert built in [world.CHECKSUMS[0], *world.OTHER_BUILDS[0]]
    assert built["eval_prompts.jsonl"] == world.CHECKSUMS[0]["eval_prompts.jsonl"]


@pytest.mark.slow
def test_small_world_build_is_the_same_whatever_thread_count_it_starts_with(tmp_path):
    """The build pins torch to one thread: on AVX-512 machines two threads sum matrix products in another order."""
    sizes = dict(corpus_size=640, n_eval_prompts=8, samples_per_prompt=2, prefix_corpus_size=60, log=lambda m: None)
    before = torch.get_num_threads()
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            world.build(tmp_path / str(threads), seed=5, **sizes)
    finally:
        torch.set_num_threads(before)
    assert world.checksums(tmp_path / "1") == world.checksums(tmp_path / "2")


@pytest.mark.slow
def test_building_the_world_leaves_the_global_random_stream_alone(tmp_path):
    """A run seeds torch before it loads the world: a first run that builds it draws what a later run draws."""
    sizes = dict(corpus_size=640, n_eval_prompts=8, samples_per_prompt=2, prefix_corpus_size=60, log=lambda m: None)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    world.build(tmp_path / "w", seed=5, **sizes)
    assert torch.equal(torch.rand(3), expected)


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


def test_verdicts_task_is_in_the_toy_vocabulary_and_answers_match_vader():
    from aligner.toy import gold, verdicts
    from aligner.toy.tokenizer import build_tokenizer

    rows = verdicts.rows(200, seed=1)
    assert rows == verdicts.rows(200, seed=1) and len(rows) == 200
    tok = build_tokenizer()
    for row in rows:
        assert tok.unk_token_id not in tok(row["prompt"])["input_ids"], row["prompt"]
        clause = row["prompt"].removesuffix(" . overall , it was")
        assert row["answer"] == ("good" if gold.vader_compound([clause])[0] > 0 else "bad")
    assert {r["answer"] for r in rows} == {"good", "bad"}
    assert verdicts.answer_match(["p"] * 4, ["good .", " bad", "great", ""], answer=["good", "good", "great", "bad"]) \
        == [1.0, 0.0, 1.0, 0.0]
    assert verdicts.answer_match(["p"], [[{"role": "assistant", "content": "bad ."}]], answer=["bad"]) == [1.0]
    assert verdicts.answer_match(["p"], ["good"], answer=[None]) == [None]


def test_verdicts_task_loads_as_a_dataset_folder(tmp_path, monkeypatch):
    from aligner.config import RunConfig
    from aligner.data import prepare

    monkeypatch.setenv("ALIGNER_CACHE", str(tmp_path))
    data = prepare.load_for_run(RunConfig(dataset="aligner-toy-verdicts", eval_prompts=8), ("prompt",), "grpo")
    assert len(data.train.dataset) == 2000 and data.train.layout.kind == "prompt"
    assert "split test" in data.eval_where and len(data.eval_prompts) == 8 and set(data.eval_columns) == {"answer"}
    assert (tmp_path / "toy-verdicts-v1" / "train.jsonl").is_file()
