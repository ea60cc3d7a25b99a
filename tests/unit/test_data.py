"""Data: every layout and source becomes its normal form, checked in Arrow batches; rows that cannot train are
dropped and counted; broken files and mappings are refused naming the file, row, column or split."""

import json

import pytest

from aligner.config import RunConfig
from aligner.data import heldout, layouts, prepare, rows, sources
from aligner.errors import DatasetError
from tests.fixtures import layouts as real


def write_jsonl(path, data):
    path.write_text("".join(json.dumps(r) + "\n" for r in data))
    return str(path)


GOOD = {"prompt": "the plot was", "chosen": " great .", "rejected": " awful ."}


def read(spec, split=None, config=None, columns=None):
    return prepare.read(sources.Source(str(spec), config, split), prepare.parse_columns(columns))


def settings(**values):
    return RunConfig(**{"eval_prompts": 4, **values})


# --- every layout, as TRL names them --------------------------------------------------------------------------


def test_standard_and_conversational_explicit(tmp_path):
    standard = read(real.standard_explicit(tmp_path))
    assert standard.layout.name == "preference (prompt/chosen/rejected), standard"
    conversational = read(real.conversational_explicit(tmp_path))
    assert conversational.layout.conversational and conversational.layout.transform is None
    assert conversational.dataset[0]["chosen"][0]["role"] == "assistant"


def test_implicit_conversations_match_trls_extract_prompt(tmp_path):
    """trl-lib/ultrafeedback_binarized: the prompt is the turns both conversations share, as TRL extracts it."""
    from trl.data_utils import extract_prompt

    path = real.trl_ultrafeedback(tmp_path)
    result = read(path)
    assert "implicit prompt" in result.layout.prompt and result.layout.ignored == ("score_chosen", "score_rejected")
    raw = [json.loads(line) for line in open(path)]
    for mine, row in zip(result.dataset, raw):
        theirs = extract_prompt({"chosen": row["chosen"], "rejected": row["rejected"]})
        assert (mine["prompt"], mine["chosen"], mine["rejected"]) == (theirs["prompt"], theirs["chosen"],
                                                                       theirs["rejected"])


def test_multi_turn_implicit_conversation_keeps_earlier_turns_in_the_prompt():
    chosen = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
              {"role": "user", "content": "c"}, {"role": "assistant", "content": "good"}]
    rejected = chosen[:3] + [{"role": "assistant", "content": "bad"}]
    prompt, c, r, problem = layouts.shared_turns(chosen, rejected)
    assert prompt == chosen[:3] and c == chosen[3:] and r == rejected[3:] and problem is None
    assert layouts.shared_turns(chosen, [{"role": "user", "content": "z"}, *rejected[1:]])[3] == \
        "the answers share no prompt turn"


def test_hh_transcripts_split_at_the_last_assistant_turn_not_the_common_characters(tmp_path):
    """Anthropic/hh-rlhf: TRL's character-level prefix moves the answers' shared words into the prompt."""
    from trl.data_utils import extract_prompt

    result = read(real.hh_rlhf(tmp_path))
    assert result.layout.transform == "transcript" and not result.layout.conversational
    first = result.dataset[0]
    assert first["prompt"].endswith("\n\nAssistant:")
    assert first["chosen"].startswith(" the ") and first["rejected"].startswith(" the ")  # shared words kept
    trl = extract_prompt({"chosen": f"{first['prompt']}{first['chosen']}",
                          "rejected": f"{first['prompt']}{first['rejected']}"})
    assert not trl["prompt"].endswith("Assistant:"), "TRL's prefix runs into the answers"
    two_turns = result.dataset[2]["prompt"]
    assert two_turns.count("\n\nHuman:") == 2 and two_turns.count("\n\nAssistant:") == 2
    assert layouts.transcript_messages(two_turns)[-1]["role"] == "user"
    assert [m["role"] for m in layouts.transcript_messages(two_turns)] == ["user", "assistant", "user"]


def test_h4_layout_needs_a_split_and_takes_its_prompt_from_the_conversation(tmp_path):
    folder = real.h4_ultrafeedback(tmp_path)
    with pytest.raises(DatasetError, match=r"no 'train' split to default to; its splits are: train_prefs, "
                                           r"test_prefs, train_sft, test_sft, train_gen, test_gen; choose one with "
                                           r"--dataset-split"):
        read(folder)
    result = read(folder, split="train_prefs")
    assert "split train_prefs" in result.where and "column 'prompt' ignored" in result.layout.prompt
    row = result.dataset[0]
    assert row["prompt"][0]["role"] == "user" and [m["role"] for m in row["chosen"]] == ["assistant"]
    with pytest.raises(DatasetError, match=r"no split 'validation'; its splits are: train_prefs"):
        read(folder, split="validation")
    with pytest.raises(DatasetError, match=r"no config 'nope'; its configs are: default"):
        read(folder, split="train_prefs", config="nope")


def test_string_prompt_with_message_answers_becomes_a_user_message(tmp_path):
    row = {"prompt": "the movie was", "chosen": [{"role": "assistant", "content": "good"}],
           "rejected": [{"role": "assistant", "content": "bad"}]}
    result = read(write_jsonl(tmp_path / "d.jsonl", [row]))
    assert result.dataset[0]["prompt"] == [{"role": "user", "content": "the movie was"}]


def test_unpaired_labels_are_booleans(tmp_path):
    for writer in (real.kto_unpaired, real.kto_unpaired_int_labels):
        result = read(writer(tmp_path))
        assert result.layout.kind == "unpaired" and set(result.dataset["label"]) == {True, False}
    bad = write_jsonl(tmp_path / "u.jsonl", [{"prompt": "a", "completion": "b", "label": "yes"}])
    with pytest.raises(DatasetError, match=r"u.jsonl: row 1: field 'label': expected a boolean \(true/false, or "
                                           r"1/0\), got 'yes'"):
        read(bad)
    two = write_jsonl(tmp_path / "v.jsonl", [{"prompt": "a", "completion": "b", "label": 1},
                                              {"prompt": "c", "completion": "d", "label": 2}])
    with pytest.raises(DatasetError, match="v.jsonl: row 2: field 'label'"):
        read(two)


def test_prompt_only_rows_keep_their_columns(tmp_path):
    result = read(real.prompt_only_with_answer(tmp_path))
    assert result.layout.kind == "prompt" and {"answer", "difficulty"} <= set(result.dataset.column_names)
    conversational = read(real.prompt_only_conversational(tmp_path))
    assert conversational.layout.conversational
    messages = read(write_jsonl(tmp_path / "m.jsonl", [{"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]))
    assert messages.dataset[0]["prompt"] == [{"role": "user", "content": "hi"}]


def test_column_mapping(tmp_path):
    path = real.stack_exchange_paired(tmp_path)
    result = read(path, columns="prompt=question,chosen=response_j,rejected=response_k")
    assert result.layout.kind == "preference" and result.layout.ignored == ("date", "qid")
    with pytest.raises(DatasetError, match=r"rows match no layout: columns found: qid, question, date, response_j, "
                                           r"response_k; accepted: "):
        read(path)
    with pytest.raises(DatasetError, match=r"--columns names 'answer_j', not a column of the data \(columns: qid, "):
        read(path, columns="prompt=question,chosen=answer_j,rejected=response_k")
    with pytest.raises(DatasetError, match="expected NAME=COLUMN pairs"):
        prepare.parse_columns("prompt")


def test_save_to_disk_folders_and_formats_agree(tmp_path):
    import datasets

    assert len(read(real.save_to_disk_dataset(tmp_path)).dataset) == 40
    saved = read(real.save_to_disk_dict(tmp_path))
    assert "split train" in saved.where and len(saved.dataset) == 40
    assert len(read(real.save_to_disk_dict(tmp_path / "again"), split="test").dataset) == 10
    data = [GOOD, {"prompt": "it is a", "chosen": " fine film .", "rejected": " bad film ."}]
    jsonl = read(write_jsonl(tmp_path / "p.jsonl", data)).dataset.to_list()
    (tmp_path / "p.json").write_text(json.dumps(data))
    datasets.Dataset.from_list(data).to_parquet(tmp_path / "p.parquet")
    datasets.Dataset.from_list(data).to_csv(tmp_path / "p.csv", index=False)
    for suffix in ("json", "parquet", "csv"):
        assert read(tmp_path / f"p.{suffix}").dataset.to_list() == jsonl == data


def test_a_folder_laid_out_like_a_hub_repository(tmp_path):
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    write_jsonl(folder / "data" / "train.jsonl", [GOOD])
    write_jsonl(folder / "data" / "test.jsonl", [{**GOOD, "prompt": "it was"}])
    assert read(folder).dataset.to_list() == [GOOD]
    assert read(folder, split="test").dataset[0]["prompt"] == "it was"


# --- rows that cannot train, and broken files -----------------------------------------------------------------


def test_rows_that_cannot_train_are_dropped_and_counted(tmp_path):
    data = [GOOD, {**GOOD, "chosen": "   "}, {**GOOD, "prompt": "a"}, {**GOOD, "prompt": "b", "rejected": " great ."}]
    result = read(write_jsonl(tmp_path / "p.jsonl", data))
    assert len(result.dataset) == 2 and result.check.dropped == 2
    assert result.check.reasons == {"rows with field 'chosen' empty": 1,
                                    "rows with field 'chosen' identical to 'rejected'": 1}
    assert result.check.first == {"rows with field 'chosen' empty": 2,
                                  "rows with field 'chosen' identical to 'rejected'": 4}


@pytest.mark.parametrize("data, message", [
    ([{**GOOD, "chosen": "  "}], "1 of 1 rows cannot train: 1 rows with field 'chosen' empty (first: row 1)"),
    ([GOOD, {**GOOD, "rejected": GOOD["chosen"]}, {**GOOD, "rejected": GOOD["chosen"]}],
     "2 of 3 rows cannot train: 2 rows with field 'chosen' identical to 'rejected' (first: row 2)"),
    ([{**GOOD, "prompt": 7}], "row 1: field 'prompt': expected a non-empty string or list of messages, got int 7"),
    ([{**GOOD, "chosen": [{"role": "assistant"}], "rejected": [{"role": "assistant", "content": "x"}]}],
     "row 1: field 'chosen': messages must be {'role': str, 'content': str}, got {'role': 'assistant'}"),
    ([{"prompt": "a", "chosen": " b ."}], "column 'chosen' without 'rejected'"),
    ([{"text": "a"}], "rows match no layout: columns found: text"),
    ([GOOD, {**GOOD, "prompt": [{"role": "user", "content": "x"}]}],
     "row 2: field 'prompt' is a message list but row 1 has a string"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, data, message):
    path = write_jsonl(tmp_path / "prefs.jsonl", data)
    with pytest.raises(DatasetError) as error:
        read(path)
    assert str(error.value).startswith(path) and message in str(error.value), str(error.value)


def test_empty_and_broken_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DatasetError, match="empty.jsonl: no rows"):
        read(empty)
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(GOOD) + "\n{oops\n")
    with pytest.raises(DatasetError, match="broken.jsonl: row 2: not valid JSON"):
        read(broken)
    with pytest.raises(DatasetError, match="no such file or folder"):
        read(tmp_path / "missing.jsonl")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DatasetError, match="unsupported file type '.txt'"):
        read(tmp_path / "x.txt")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DatasetError, match="a folder with no data files"):
        read(tmp_path / "nothing")
    with pytest.raises(DatasetError, match="a single file has no configs or splits; drop --dataset-split"):
        read(write_jsonl(tmp_path / "one.jsonl", [GOOD]), split="test")


# --- held out, drawn, distinct ----------------------------------------------------------------------------------


def test_held_out_prompts_are_disjoint_and_stable(tmp_path):
    data = [{"prompt": f"prompt {i % 40}", "chosen": f" good {i} .", "rejected": f" bad {i} ."} for i in range(120)]
    dataset = read(write_jsonl(tmp_path / "p.jsonl", data)).dataset
    train, held = heldout.split_held_out(dataset, 8)
    assert len(held) == 8 and not set(held["prompt"]) & set(train["prompt"])
    assert len(train) == 120 - 8 * 3
    assert heldout.split_held_out(dataset, 8)[1]["prompt"] == held["prompt"]
    shuffled = read(write_jsonl(tmp_path / "s.jsonl", data[::-1])).dataset
    assert sorted(heldout.split_held_out(shuffled, 8)[1]["prompt"]) == sorted(held["prompt"]), "order-free"
    with pytest.raises(DatasetError, match="40 distinct prompts: too few to hold out 30"):
        heldout.split_held_out(dataset, 30)


def test_conversational_prompts_split_and_dedup_like_strings(tmp_path):
    data = [{"prompt": [{"role": "user", "content": f"p{i % 10}"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": f"b{i}"}]} for i in range(30)]
    dataset = read(write_jsonl(tmp_path / "c.jsonl", data)).dataset
    assert heldout.first_rows(dataset).tolist() == list(range(10))
    train, held = heldout.split_held_out(dataset, 3)
    assert len(train) == 21 and len(held) == 3


def test_max_samples_draws_rows_with_the_seed(tmp_path):
    data = [{"prompt": f"p{i}", "chosen": " a", "rejected": " b"} for i in range(100)]
    path = write_jsonl(tmp_path / "p.jsonl", data)
    one = prepare.load_for_run(settings(dataset=path, max_samples=30, eval_prompts=5), ("preference",), "dpo")
    again = prepare.load_for_run(settings(dataset=path, max_samples=30, eval_prompts=5), ("preference",), "dpo")
    other = prepare.load_for_run(settings(dataset=path, max_samples=30, eval_prompts=5, seed=1), ("preference",),
                                 "dpo")
    assert len(one.train.dataset) + len(one.eval_rows) == 30
    assert one.train.dataset["prompt"] == again.train.dataset["prompt"] != other.train.dataset["prompt"]


# --- one run's data ------------------------------------------------------------------------------------------------


def test_algorithm_refuses_a_layout_it_cannot_train_on(tmp_path):
    path = real.prompt_only_with_answer(tmp_path)
    with pytest.raises(DatasetError, match=r"dpo trains on preference \(prompt/chosen/rejected\) rows; these are "
                                           r"prompt-only, standard \(columns: prompt, answer, difficulty\)"):
        prepare.load_for_run(settings(dataset=str(path)), ("preference",), "dpo")
    with pytest.raises(DatasetError, match=r"no preference pairs to train the reward model \(--reward model\) on: "
                                           r"give --reward-dataset"):
        prepare.load_for_run(settings(dataset=str(path)), ("preference", "unpaired", "prompt"), "grpo",
                             reward_pairs_needed=True)


def test_eval_split_and_eval_dataset_keep_their_columns(tmp_path):
    folder = real.h4_ultrafeedback(tmp_path)
    data = prepare.load_for_run(settings(dataset=str(folder), dataset_split="train_prefs", eval_split="test_prefs"),
                                ("preference",), "dpo")
    assert "split test_prefs" in data.eval_where and len(data.eval_prompts) == 4
    assert len(data.train.dataset) == 40, "nothing held out of the training split"
    answers = real.prompt_only_with_answer(tmp_path)
    data = prepare.load_for_run(settings(dataset=str(answers), eval_dataset=str(answers)),
                                ("preference", "unpaired", "prompt"), "grpo")
    assert set(data.eval_columns) == {"answer", "difficulty"}
    for prompt, answer in zip(data.eval_prompts, data.eval_columns["answer"]):  # each row's own answer
        a, b = prompt.split()[2], prompt.split()[4]
        assert int(answer) == int(a) + int(b)
    line = prepare.start_line(data)
    assert line.startswith(f"aligner: data: {answers}: 40 rows, prompt-only, standard; prompt from column 'prompt'")


def test_chat_template_transcripts_and_truncation(tmp_path):
    from transformers import AutoTokenizer

    from tests.fixtures import models

    chat = AutoTokenizer.from_pretrained(models.chat_model(tmp_path / "chat"))
    plain = AutoTokenizer.from_pretrained(models.nopad_bos_model(tmp_path / "plain"))
    hh = str(real.hh_rlhf(tmp_path))
    data = prepare.load_for_run(settings(dataset=hh), ("preference",), "dpo")
    prepare.fit_to_tokenizer(data, chat, "chat", 64, None)
    long = [row for row in data.train.dataset if len(row["prompt"]) > 1]
    assert long and all([m["role"] for m in row["prompt"]] == ["user", "assistant", "user"] for row in long)
    row = long[0]
    assert row["chosen"] == [{"role": "assistant", "content": row["chosen"][0]["content"]}]
    assert isinstance(data.eval_prompts[0], list), "held-out prompts become messages too"
    assert data.report["truncation"]["rows_checked"] == len(data.train.dataset)
    kept = prepare.load_for_run(settings(dataset=hh), ("preference",), "dpo")
    prepare.fit_to_tokenizer(kept, plain, "plain", 16, None)
    assert isinstance(kept.train.dataset[0]["prompt"], str), "no chat template: transcripts stay strings"
    assert kept.report["truncation"]["prompts_cut"] > 0
    conversational = prepare.load_for_run(settings(dataset=str(real.trl_ultrafeedback(tmp_path))), ("preference",),
                                          "dpo")
    with pytest.raises(DatasetError, match="rows are conversational \\(message lists\\), but the tokenizer of "
                                           "--model plain has no chat template"):
        prepare.fit_to_tokenizer(conversational, plain, "plain", 64, None)


def test_rows_are_checked_in_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "BATCH", 7)
    data = [{**GOOD, "prompt": f"p{i}"} for i in range(30)] + [{**GOOD, "prompt": "x", "chosen": ""}]
    result = read(write_jsonl(tmp_path / "p.jsonl", data))
    assert len(result.dataset) == 30 and result.check.first == {"rows with field 'chosen' empty": 31}


def test_cli_reports_bad_dataset_before_training(tmp_path, capsys):
    from aligner.cli import main

    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "x", "chosen": "", "rejected": "y"}])
    assert main(["run", "dpo", "--dataset", path, "--output-dir", str(tmp_path / "out")]) == 2
    assert "bad.jsonl: 1 of 1 rows cannot train: 1 rows with field 'chosen' empty (first: row 1)" in \
        capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batches_read_the_cache_files_as_the_dataset_reads_its_rows(tmp_path, monkeypatch):
    """Streamed from the Arrow cache (a dataset that is exactly its files) or through the map (rows selected, or
    columns renamed), the batches hold the dataset's rows in order."""
    data = [{**GOOD, "prompt": f"p{i}"} for i in range(50)]
    dataset = sources.load(sources.Source(write_jsonl(tmp_path / "p.jsonl", data))).dataset
    assert dataset.cache_files, "loaded through the datasets cache"
    for view in (dataset, dataset.select(range(3, 40, 2)), dataset.rename_column("prompt", "question")):
        got = [row for _, batch in rows.batches(view, size=6) for row in batch.to_pylist()]
        assert got == view.to_list()
        offsets = [(start, batch.num_rows) for start, batch in rows.batches(view, size=6)]
        assert [start for start, _ in offsets] == [sum(n for _, n in offsets[:i]) for i in range(len(offsets))]


@pytest.mark.parametrize("max_length", [64, 9])
def test_a_batch_encodes_as_its_rows_do_one_at_a_time(max_length):
    """Plain-text batches go through the tokenizer in two calls; every row's ids, masks and truncation equal the
    one-row-at-a-time encoding."""
    import torch

    from aligner.data.encoding import batch_token_ids, encode_sequences, token_ids
    from aligner.toy.tokenizer import build_tokenizer

    tok = build_tokenizer()
    prompts = ["the movie was", "a", "this film is not very good and the plot", "", "the  acting"]
    responses = [" great", " bad and boring", "", " fine .", " the movie was the movie was the movie"]
    assert batch_token_ids(tok, prompts, responses) == [token_ids(tok, p, r) for p, r in zip(prompts, responses)]
    batch = encode_sequences(tok, prompts, responses, max_length, "cpu")
    for i, (prompt, response) in enumerate(zip(prompts, responses)):
        alone = encode_sequences(tok, [prompt], [response], max_length, "cpu")
        width = alone.input_ids.shape[1]
        assert torch.equal(batch.input_ids[i, :width], alone.input_ids[0])
        assert torch.equal(batch.response_mask[i, :width], alone.response_mask[0])
        assert batch.attention_mask[i].sum() == alone.attention_mask[0].sum() == min(
            max_length, sum(map(len, token_ids(tok, prompt, response))))
