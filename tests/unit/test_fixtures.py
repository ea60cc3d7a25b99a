"""The test fixtures themselves: each model folder reloads with the Auto classes in its hub layout, and each dataset
writer gives files `datasets` reads with the layout's columns."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from tests.fixtures import layouts, models

MESSAGES = [{"role": "user", "content": "write a review"}, {"role": "assistant", "content": "the plot was great ."}]


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"chat": models.chat_model(root / "chat"), "nopad": models.nopad_bos_model(root / "nopad"),
            "rm": models.sequence_classifier(root / "rm")}


def test_chat_model_is_qwen_instruct_layout(folders, tmp_path):
    tok = AutoTokenizer.from_pretrained(folders["chat"])
    assert tok.apply_chat_template(MESSAGES, tokenize=False) == (
        "<|im_start|>user\nwrite a review<|im_end|>\n<|im_start|>assistant\nthe plot was great .<|im_end|>\n")
    assert tok.apply_chat_template(MESSAGES[:1], tokenize=False, add_generation_prompt=True).endswith(
        "<|im_end|>\n<|im_start|>assistant\n")
    assert (tok.eos_token, tok.pad_token, tok.bos_token) == ("<|im_end|>", "<|endoftext|>", None)
    ids = tok("the plot was great .")["input_ids"]
    assert tok.decode(ids) == "the plot was great ." and not set(ids) & set(tok.all_special_ids)  # adds no BOS
    assert 400 <= len(tok) <= 600
    marked = tok("<|im_start|>user\nhi<|im_end|>")["input_ids"]  # the ChatML markers are single special tokens
    assert tok.convert_ids_to_tokens([marked[0], marked[-1]]) == ["<|im_start|>", "<|im_end|>"]
    model = AutoModelForCausalLM.from_pretrained(folders["chat"])
    assert model.config.model_type == "qwen2" and model.config.architectures == ["Qwen2ForCausalLM"]
    assert (model.config.eos_token_id, model.config.pad_token_id) == (tok.eos_token_id, tok.pad_token_id)
    assert model.generation_config.eos_token_id == [tok.eos_token_id, tok.pad_token_id]
    again = models.chat_model(tmp_path / "again")  # seeded: byte-identical weights and tokenizer
    for name in ("model.safetensors", "tokenizer.json"):
        assert (again / name).read_bytes() == (folders["chat"] / name).read_bytes()


def test_nopad_bos_model_is_llama3_base_layout(folders):
    tok = AutoTokenizer.from_pretrained(folders["nopad"])
    assert tok.pad_token is None and tok.pad_token_id is None and tok.chat_template is None
    assert (tok.bos_token, tok.eos_token) == ("<|begin_of_text|>", "<|end_of_text|>")
    for text in ("the plot was great .", "hello"):
        ids = tok(text)["input_ids"]
        assert ids[0] == tok.bos_token_id and tok.bos_token_id not in ids[1:]
    model = AutoModelForCausalLM.from_pretrained(folders["nopad"])
    assert model.config.architectures == ["LlamaForCausalLM"] and model.config.pad_token_id is None
    assert model.config.bos_token_id == tok.bos_token_id and model.config.eos_token_id == tok.eos_token_id


def test_sequence_classifier_is_reward_model_layout_and_scores_sentiment(folders, tmp_path):
    tok = AutoTokenizer.from_pretrained(folders["rm"])
    model = AutoModelForSequenceClassification.from_pretrained(folders["rm"]).eval()
    assert model.config.num_labels == 1 and model.config.architectures == ["LlamaForSequenceClassification"]
    assert tok.pad_token == "[PAD]" and model.config.pad_token_id == tok.pad_token_id
    assert tok.get_vocab() != AutoTokenizer.from_pretrained(folders["chat"]).get_vocab()
    chat = tok.apply_chat_template(MESSAGES, tokenize=False)
    assert chat.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nwrite a review<|eot_id|>")
    texts = ["the plot was terrific .", "the plot was terrible .", "the movie was long .",
             "a great and wonderful film but the ending was bad .", chat]
    expected = [models.sentiment_score(tok, t) for t in texts]
    rows = []
    for side in ("right", "left"):  # padding on either side: the score of the last real token
        tok.padding_side = side
        with torch.no_grad():
            rows.append(model(**tok(texts, padding=True, return_tensors="pt")).logits[:, 0])
    with torch.no_grad():
        alone = torch.stack([model(**tok(t, return_tensors="pt")).logits[0, 0] for t in texts])
    torch.testing.assert_close(rows[0], alone, atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[1], alone, atol=1e-5, rtol=0)
    assert alone[0] > 0 > alone[1] and alone[2] == 0 and alone[3] > 0 and alone[4] > 0
    assert torch.equal(torch.tensor(expected).argsort(), alone.argsort())
    plain = models.sequence_classifier(tmp_path / "plain", chat_template=False, num_labels=2)
    assert AutoTokenizer.from_pretrained(plain).chat_template is None
    two = AutoModelForSequenceClassification.from_pretrained(plain).eval()
    with torch.no_grad():
        logits = two(**tok(texts[:2], return_tensors="pt", padding=True)).logits
    assert logits.shape == (2, 2) and logits[0, 1] > logits[0, 0] and logits[1, 1] < logits[1, 0]


PAIRS = ("prompt", "chosen", "rejected")
FILES = {  # writer: (columns, whether prompts are message lists)
    layouts.standard_explicit: (PAIRS, False),
    layouts.conversational_explicit: (PAIRS, True),
    layouts.trl_ultrafeedback: (("chosen", "rejected", "score_chosen", "score_rejected"), True),
    layouts.hh_rlhf: (("chosen", "rejected"), False),
    layouts.kto_unpaired: (("prompt", "completion", "label"), False),
    layouts.kto_unpaired_int_labels: (("prompt", "completion", "label"), False),
    layouts.prompt_only_with_answer: (("prompt", "answer", "difficulty"), False),
    layouts.prompt_only_conversational: (("prompt", "answer", "difficulty"), True),
    layouts.stack_exchange_paired: (("qid", "question", "date", "response_j", "response_k"), False),
}


@pytest.mark.parametrize("writer", FILES, ids=lambda writer: writer.__name__)
def test_layout_files_read_with_their_columns(writer, tmp_path):
    import datasets

    path = writer(tmp_path / "data", n=12)
    rows = datasets.load_dataset(path.suffix.lstrip(".").replace("jsonl", "json"), data_files=str(path),
                                 split="train", cache_dir=str(tmp_path / "cache"))
    columns, conversational = FILES[writer]
    assert rows.column_names == list(columns) and len(rows) == 12
    first = rows[0][columns[0]]
    assert isinstance(first, list) == conversational and (not conversational or first[0]["role"] == "user")
    key = "question" if "question" in columns else columns[0]
    assert len({str(row[key]) for row in rows}) == 12  # distinct prompts (or conversations)
    pair = [c for c in ("chosen", "rejected", "response_j", "response_k") if c in columns]
    assert all(row[pair[0]] != row[pair[1]] for row in rows) if pair else True
    if writer is layouts.kto_unpaired:
        assert rows.features["label"].dtype == "bool" and set(rows["label"]) == {True, False}
    if writer is layouts.kto_unpaired_int_labels:
        assert set(rows["label"]) == {0, 1} and rows.features["label"].dtype == "int64"


def test_hh_rlhf_transcripts_share_all_but_the_last_answer(tmp_path):
    import json

    rows = [json.loads(line) for line in layouts.hh_rlhf(tmp_path, n=12).read_text().splitlines()]
    same_start = 0
    for row in rows:
        head, _, chosen = row["chosen"].rpartition("\n\nAssistant:")
        assert row["rejected"].startswith(head + "\n\nAssistant:") and row["chosen"].startswith("\n\nHuman: ")
        rejected = row["rejected"][len(head) + len("\n\nAssistant:"):]
        assert chosen != rejected and "\n\nAssistant:" not in rejected
        same_start += chosen.split()[:3] == rejected.split()[:3]
    assert same_start >= 4 and sum(row["chosen"].count("\n\nHuman:") == 2 for row in rows) >= 3
    assert any(r["chosen"].endswith(" terrific .") and r["rejected"].endswith(" terrible .") for r in rows)


def test_h4_clone_has_named_splits(tmp_path):
    import datasets

    folder = layouts.h4_ultrafeedback(tmp_path / "h4", n=8)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == list(layouts.H4_SPLITS)
    assert loaded["train_prefs"].column_names == ["prompt", "prompt_id", "chosen", "rejected", "messages",
                                                  "score_chosen", "score_rejected"]
    row = loaded["train_prefs"][0]
    assert row["chosen"][0] == {"role": "user", "content": row["prompt"]} and row["messages"] == row["chosen"]
    assert row["chosen"][1] != row["rejected"][1] and len(loaded["test_prefs"]) == 2


def test_save_to_disk_layouts(tmp_path):
    import datasets

    single = datasets.load_from_disk(str(layouts.save_to_disk_dataset(tmp_path, n=6)))
    assert isinstance(single, datasets.Dataset) and single.column_names == list(PAIRS) and len(single) == 6
    both = datasets.load_from_disk(str(layouts.save_to_disk_dict(tmp_path, n=8)))
    assert list(both) == ["train", "test"] and both["train"].column_names == list(PAIRS)
    assert (len(both["train"]), len(both["test"])) == (8, 2)
