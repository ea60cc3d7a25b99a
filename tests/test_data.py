import json

import pytest

from aligner import data


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


GOOD = {"prompt": "the plot was", "chosen": " great .", "rejected": " awful ."}


@pytest.mark.parametrize("rows, message", [
    ([GOOD, {"prompt": "a", "chosen": " b ."}], "row 2: missing field 'rejected'"),
    ([GOOD, {**GOOD, "chosen": "   "}], "row 2: field 'chosen': empty"),
    ([{**GOOD, "prompt": 7}], "row 1: field 'prompt': expected a non-empty string or list of messages, got int"),
    ([GOOD, GOOD, {**GOOD, "rejected": GOOD["chosen"]}], "row 3: field 'chosen' is identical to 'rejected'"),
    ([{**GOOD, "chosen": [{"role": "assistant"}]}], "row 1: field 'chosen': messages must be"),
    ([["not", "an", "object"]], "row 1: expected an object"),
])
def test_bad_rows_name_file_row_and_field(tmp_path, rows, message):
    path = write_jsonl(tmp_path / "prefs.jsonl", rows)
    with pytest.raises(data.DatasetError) as error:
        data.load_preferences(path)
    assert str(error.value).startswith(path) and message in str(error.value)


def test_empty_and_broken_files(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(data.DatasetError, match="empty.jsonl: no rows"):
        data.load_preferences(str(empty))
    broken = tmp_path / "broken.jsonl"
    broken.write_text(json.dumps(GOOD) + "\n{oops\n")
    with pytest.raises(data.DatasetError, match="broken.jsonl: row 2: not valid JSON"):
        data.load_preferences(str(broken))
    with pytest.raises(data.DatasetError, match="no such file"):
        data.load_preferences(str(tmp_path / "missing.jsonl"))
    with pytest.raises(data.DatasetError, match="unsupported file type '.txt'"):
        (tmp_path / "x.txt").write_text("hi")
        data.load_preferences(str(tmp_path / "x.txt"))


def test_formats_agree(tmp_path):
    import datasets

    rows = [GOOD, {"prompt": "it is a", "chosen": " fine film .", "rejected": " bad film ."}]
    jsonl = data.load_preferences(write_jsonl(tmp_path / "p.jsonl", rows))
    (tmp_path / "p.json").write_text(json.dumps(rows))
    as_json = data.load_preferences(str(tmp_path / "p.json"))
    datasets.Dataset.from_list(rows).to_parquet(tmp_path / "p.parquet")
    datasets.Dataset.from_list(rows).to_csv(tmp_path / "p.csv", index=False)
    for other in (as_json, data.load_preferences(str(tmp_path / "p.parquet")),
                  data.load_preferences(str(tmp_path / "p.csv"))):
        assert other.to_list() == jsonl.to_list() == rows


def test_extra_columns_are_dropped_and_conversational_rows_pass(tmp_path):
    conv = {"prompt": [{"role": "user", "content": "Review it."}],
            "chosen": [{"role": "assistant", "content": "Great."}],
            "rejected": [{"role": "assistant", "content": "Awful."}], "score": 1.0}
    ds = data.load_preferences(write_jsonl(tmp_path / "c.jsonl", [conv]))
    assert ds.column_names == ["prompt", "chosen", "rejected"]


def test_held_out_prompts_are_disjoint_and_stable(tmp_path):
    rows = [{"prompt": f"prompt {i % 40}", "chosen": f" good {i} .", "rejected": f" bad {i} ."} for i in range(120)]
    ds = data.load_preferences(write_jsonl(tmp_path / "p.jsonl", rows))
    train, held = data.split_held_out(ds, 8)
    assert len(held) == 8 and not set(held) & set(train["prompt"])
    assert len(train) == 120 - 8 * 3
    assert data.split_held_out(ds, 8)[1] == held
    with pytest.raises(data.DatasetError, match="40 distinct prompts: too few to hold out 30"):
        data.split_held_out(ds, 30)


def test_cli_reports_bad_dataset_before_training(tmp_path, capsys):
    from aligner.cli import main

    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, {"prompt": "x", "chosen": "", "rejected": "y"}])
    assert main(["run", "dpo", "--dataset", path, "--output-dir", str(tmp_path / "out")]) == 2
    assert "bad.jsonl: row 2: field 'chosen': empty" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
