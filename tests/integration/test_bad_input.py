"""The standing bad-input suite: every kind of malformed dataset, model folder, setting, path, checkpoint, reward
model and suite goes through the CLI, which must exit with the documented code, print one error naming the
culprit (no traceback: an exception escaping `main` fails the test), and write nothing where a run is expected.
Each case also proves the refusal came before the expensive steps it should precede. Add every bad input you meet.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import yaml

import aligner.harness.evaluation
import aligner.modeling.base
from aligner.cli import main
from aligner.harness import rundir

ROW = {"prompt": "the movie was", "chosen": " very good", "rejected": " bad"}
CHAT_ROW = {"prompt": [{"role": "user", "content": "the movie was"}],
            "chosen": [{"role": "assistant", "content": "very good"}],
            "rejected": [{"role": "assistant", "content": "bad"}]}
FAST = ["--eval-prompts", "4", "--eval-max-new-tokens", "4"]


def jsonl(*rows) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


# (file name, bytes, message)
BAD_FILES = {
    "not-utf8": ("d.jsonl", jsonl(ROW) + b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}\n',
                 "d.jsonl: not UTF-8 text: byte 87 (line 2) cannot be decoded"),
    "not-utf8-csv": ("d.csv", b"prompt,chosen,rejected\ncaf\xe9,a,b\n", "d.csv: not UTF-8 text"),
    "bad-json-row": ("d.jsonl", jsonl(ROW) + b"{oops\n", "d.jsonl: row 2: not valid JSON"),
    "deep-json": ("d.json", b"[" * 100_000 + b"]" * 100_000, "d.json: JSON nested too deeply"),
    "json-not-list": ("d.json", b'{"prompt": "x"}', "d.json: expected a JSON list of rows, got dict"),
    "empty": ("d.jsonl", b"", "d.jsonl: no rows"),
    "missing-field": ("d.jsonl", jsonl({"prompt": "a", "chosen": "b"}), "d.jsonl: column 'chosen' without 'rejected'"),
    "empty-chosen": ("d.jsonl", jsonl({**ROW, "chosen": "  "}),
                     "d.jsonl: 1 of 1 rows cannot train: 1 rows with field 'chosen' empty (first: row 1)"),
    "number-field": ("d.jsonl", jsonl({**ROW, "rejected": 3}), "row 1: field 'rejected': expected a non-empty string"),
    "same-answers": ("d.jsonl", jsonl({**ROW, "rejected": ROW["chosen"]}),
                     "rows with field 'chosen' identical to 'rejected' (first: row 1)"),
    "bad-message": ("d.jsonl", jsonl({**CHAT_ROW, "chosen": [{"role": "assistant"}]}),
                    "row 1: field 'chosen': messages must be {'role': str, 'content': str}"),
    "mixed-file": ("d.jsonl", jsonl(ROW, CHAT_ROW),
                   "d.jsonl: row 2: field 'chosen' is a message list but row 1 has a string; one file must use one "
                   "format per field"),
    "no-layout": ("d.jsonl", jsonl({"question": "a", "answer": "b"}),
                  "d.jsonl: rows match no layout: columns found: question, answer; accepted: "),
    "label-not-boolean": ("d.jsonl", jsonl({"prompt": "a", "completion": "b", "label": "good"}),
                          "d.jsonl: row 1: field 'label': expected a boolean (true/false, or 1/0), got 'good'"),
    "wrong-type": ("d.txt", b"hello", "d.txt: unsupported file type '.txt'"),
    "chat-without-template": ("d.jsonl", jsonl(*[{**CHAT_ROW, "prompt": [{"role": "user", "content": f"p{i}"}]}
                                                 for i in range(10)]),
                              "d.jsonl: rows are conversational (message lists), but the tokenizer of --model "
                              "aligner-toy has no chat template"),
}


@pytest.fixture
def nothing_expensive(monkeypatch):
    """Fails the test if base weights load or an evaluation starts: bad input must be refused before either."""
    def refuse(*args, **kwargs):
        raise AssertionError("an expensive step ran before the bad input was refused")

    monkeypatch.setattr(aligner.modeling.base.AutoModelForCausalLM, "from_pretrained", refuse)
    monkeypatch.setattr(aligner.harness.evaluation, "evaluate", refuse)


def assert_refused(capsys, code: int, expected_code: int, message: str, out=None) -> str:
    err = capsys.readouterr().err
    assert code == expected_code, err
    assert message in err, err
    assert err.count("aligner: error:") == 1, err
    assert "Traceback" not in err
    if out is not None:
        assert not out.exists(), "nothing may be written where the run is expected"
        litter = [p.name for p in out.parent.glob(f".{out.name}*")]
        assert litter == [], f"left behind: {litter}"
    return err


PROMPT_ONLY = {"chosen", "rejected", "identical"}
"""Cases about answer columns, which held-out prompt files do not have."""


@pytest.mark.parametrize("flag, case", [("--dataset", c) for c in sorted(BAD_FILES)] + [
    ("--eval-dataset", c) for c in sorted(BAD_FILES) if not any(w in BAD_FILES[c][2] for w in PROMPT_ONLY)])
def test_bad_data_files(tmp_path, capsys, toy_world, nothing_expensive, flag, case):
    name, content, message = BAD_FILES[case]
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    code = main(["run", "dpo", flag, str(path), "--output-dir", str(out), *FAST])
    assert_refused(capsys, code, 2, message.replace(name, str(path), 1), out)


def test_missing_data_file(tmp_path, capsys, nothing_expensive):
    out = tmp_path / "out"
    code = main(["run", "orpo", "--dataset", str(tmp_path / "none.jsonl"), "--output-dir", str(out)])
    assert_refused(capsys, code, 2, "none.jsonl: no such file or folder", out)


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "{repo}"], "{repo}: no 'train' split to default to; its splits are: train_prefs, test_prefs, "
                              "train_sft, test_sft, train_gen, test_gen; choose one with --dataset-split"),
    (["--dataset", "{repo}", "--dataset-split", "validation"], "{repo}: no split 'validation'; its splits are: "
                                                               "train_prefs, test_prefs"),
    (["--dataset", "{repo}", "--dataset-config", "nope"], "{repo}: no config 'nope'; its configs are: default"),
    (["--dataset", "{repo}", "--dataset-split", "train_prefs", "--eval-split", "dev"],
     "{repo}: no split 'dev'; its splits are: train_prefs, test_prefs"),
    (["--dataset", "{repo}", "--dataset-split", "train_prefs", "--columns", "prompt=question"],
     "--columns names 'question', not a column of the data (columns: prompt, prompt_id, chosen, rejected, messages"),
    (["--dataset", "{repo}", "--columns", "prompt"], "--columns prompt: expected NAME=COLUMN pairs"),
    (["--gold-reward", "nowhere_module:f"], "--gold-reward nowhere_module:f: could not import nowhere_module"),
    (["--gold-reward", "{repo}"], "--gold-reward {repo}: a folder with no config.json: not a model"),
])
def test_bad_sources_splits_columns_and_judges(tmp_path, capsys, toy_world, nothing_expensive, argv, message):
    """A clone of HuggingFaceH4/ultrafeedback_binarized's layout: splits train_prefs ... test_gen, no train."""
    from tests.fixtures.layouts import h4_ultrafeedback

    repo = h4_ultrafeedback(tmp_path / "repo")
    out = tmp_path / "out"
    code = main(["run", "dpo", *[a.format(repo=repo) for a in argv], "--output-dir", str(out), *FAST])
    assert_refused(capsys, code, 2, message.format(repo=repo), out)


def test_prompt_only_data_for_a_pair_method(tmp_path, capsys, nothing_expensive):
    path = tmp_path / "prompts.jsonl"
    path.write_bytes(jsonl({"prompt": "the movie was", "answer": "good"}))
    out = tmp_path / "out"
    code = main(["run", "simpo", "--dataset", str(path), "--output-dir", str(out)])
    assert_refused(capsys, code, 2, "simpo trains on preference (prompt/chosen/rejected) rows; these are prompt-only, "
                                    "standard (columns: prompt, answer)", out)


def model_folder(tmp_path, toy_world, kind: str):
    folder = tmp_path / kind
    folder.mkdir()
    if kind in ("no-weights", "broken-weights"):
        for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
            (folder / name).write_bytes((toy_world.model_dir / name).read_bytes())
    if kind == "broken-weights":
        (folder / "model.safetensors").write_bytes(b"not safetensors")
    if kind == "bad-config":
        (folder / "config.json").write_text("{bad")
    return folder


@pytest.mark.parametrize("kind, message", [
    ("empty", "holds no model (no config.json)"),
    ("bad-config", "could not load its tokenizer"),
    ("no-weights", "could not load its weights (OSError"),
    ("broken-weights", "could not load its weights"),
])
def test_bad_model_folders(tmp_path, capsys, toy_world, kind, message):
    out = tmp_path / "out"
    code = main(["run", "dpo", "--model", str(model_folder(tmp_path, toy_world, kind)), "--output-dir", str(out),
                 *FAST])
    assert_refused(capsys, code, 2, f"--model {tmp_path / kind}: {message}", out)


def test_missing_model_folder(tmp_path, capsys, nothing_expensive):
    code = main(["run", "dpo", "--model", str(tmp_path / "nowhere"), "--output-dir", str(tmp_path / "out")])
    assert_refused(capsys, code, 2, "no such directory", tmp_path / "out")


@pytest.mark.parametrize("argv, message", [
    (["run", "dpo", "--learning-rate", "nan"], "--learning-rate must be a finite number, got nan"),
    (["run", "dpo", "--beta", "inf"], "--beta must be a finite number, got inf"),
    (["run", "ppo", "--kl-coef=-inf"], "--kl-coef must be a finite number, got -inf"),
    (["run", "ppo", "--approxkl-stop", "nan"], "--approxkl-stop must be a finite number"),
    (["run", "ppo", "--response-length", "64"], "--response-length 64 must be below --max-length 64"),
    (["run", "reward", "--heldout-fraction", "nan"], "--heldout-fraction must be a finite number"),
])
def test_non_finite_and_inconsistent_settings(tmp_path, capsys, nothing_expensive, argv, message):
    out = tmp_path / "out"
    assert_refused(capsys, main([*argv, "--output-dir", str(out)]), 2, message, out)


@pytest.mark.parametrize("text, message", [
    ("learning_rate: .nan\n", "--learning-rate must be a finite number, got nan"),
    ("beta: .inf\n", "--beta must be a finite number, got inf"),
    ("max_steps: 1.5\n", "max_steps must be int, got 1.5"),
    ("- 1\n", "expected a mapping of setting: value"),
    ("beta: [\n", "not valid YAML"),
])
def test_bad_config_files(tmp_path, capsys, nothing_expensive, text, message):
    config, out = tmp_path / "c.yaml", tmp_path / "out"
    config.write_text(text)
    assert_refused(capsys, main(["run", "dpo", "--config", str(config), "--output-dir", str(out)]), 2, message, out)


def test_unwritable_output_directory_is_refused_before_loading(tmp_path, capsys, nothing_expensive):
    (tmp_path / "a-file").write_text("x")
    out = tmp_path / "a-file" / "run"
    code = main(["run", "dpo", "--output-dir", str(out)])
    assert_refused(capsys, code, 2, f"--output-dir {out}: {tmp_path / 'a-file'} is a file, not a directory")


def test_read_only_output_location_is_refused_before_loading(tmp_path, capsys, nothing_expensive):
    out = Path("/proc/aligner-cannot-write-here/run")  # not writable even by root
    code = main(["run", "dpo", "--output-dir", str(out)])
    assert_refused(capsys, code, 2, f"--output-dir {out}: cannot write in {out.parent}")


def test_occupied_output_directory(tmp_path, capsys, nothing_expensive):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert_refused(capsys, main(["run", "dpo", "--output-dir", str(out)]), 2, "not empty; pass --overwrite")
    assert (out / "summary.json").read_text() == "{}"


def test_second_run_into_the_same_directory_is_refused_at_once(tmp_path, capsys, nothing_expensive):
    out = tmp_path / "out"
    held = rundir.claim(out)  # what a running `aligner run --output-dir out` holds
    try:
        code = main(["run", "dpo", "--output-dir", str(out), "--overwrite"])
        assert_refused(capsys, code, 2, f"--output-dir {out}: another aligner run (pid ")
    finally:
        held.release()
    assert not out.exists() and not list(tmp_path.glob(".out.partial-*"))


class Payload:
    """Unpickling this writes a marker file: proof that a loader ran code from the checkpoint."""

    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_pickle_checkpoint_is_refused_unopened(tmp_path, capsys, nothing_expensive):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    Payload.marker = tmp_path / "pwned"
    (checkpoint / "state.pt").write_bytes(pickle.dumps({"step": Payload()}))
    out = tmp_path / "out"
    code = main(["run", "ppo", "--reward", "gold", "--resume", str(checkpoint), "--output-dir", str(out)])
    assert_refused(capsys, code, 2, "holds state.pt, a pickle, which aligner does not load", out)
    assert not Payload.marker.exists(), "the pickle was executed"
    # ... and the check is real: the loader aligner used before runs the payload (then fails on the format)
    import torch

    with pytest.raises(RuntimeError):
        torch.load(checkpoint / "state.pt", weights_only=False)
    assert Payload.marker.exists()


@pytest.mark.parametrize("damage, message", [
    ("json", "state.json: not valid JSON"),
    ("tensors", "state.safetensors: not a readable safetensors file"),
    ("missing-tensors", "state.safetensors: missing"),
    ("not-ppo", "state.json is not an online checkpoint's state"),
    ("other-critic", "saved with --critic separate, not shared"),
])
def test_damaged_checkpoints(tmp_path, capsys, nothing_expensive, damage, message):
    from aligner.training import checkpoints

    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    checkpoints.save_state(checkpoint, "state", {"step": 1} if damage == "not-ppo" else
                  {"step": 1, "method": "ppo", "critic": "separate" if damage == "other-critic" else "shared",
                   "settings": {}, "kind": "online"})
    if damage == "json":
        (checkpoint / "state.json").write_text("{")
    elif damage == "tensors":
        (checkpoint / "state.safetensors").write_bytes(b"\x00" * 3)
    elif damage == "missing-tensors":
        (checkpoint / "state.safetensors").unlink()
        (checkpoint / "state.json").write_text("{}")
    out = tmp_path / "out"
    code = main(["run", "ppo", "--reward", "gold", "--resume", str(checkpoint), "--output-dir", str(out)])
    if damage == "missing-tensors":
        message = "no checkpoint there"  # without both files it is not found as a checkpoint at all
    assert_refused(capsys, code, 2, message, out)


@pytest.mark.parametrize("damage, message", [
    ("none", "not a reward model directory (no reward_model.json)"),
    ("json", "reward_model.json: not valid JSON"),
    ("fields", "needs base_fingerprint (a string) and hidden_size (an integer)"),
    ("head", "head.safetensors is missing"),
])
def test_damaged_reward_models(tmp_path, capsys, nothing_expensive, damage, message):
    folder = tmp_path / "rm"
    (folder / "adapter").mkdir(parents=True)
    (folder / "adapter" / "adapter_config.json").write_text("{}")
    if damage == "json":
        (folder / "reward_model.json").write_text("{")
    elif damage == "fields":
        (folder / "reward_model.json").write_text('{"base_fingerprint": 3}')
    elif damage == "head":
        (folder / "reward_model.json").write_text('{"base_fingerprint": "v2-x", "hidden_size": 4}')
    out = tmp_path / "out"
    code = main(["run", "ppo", "--reward-model", str(folder), "--output-dir", str(out)])
    assert_refused(capsys, code, 2, message, out)


def suite_file(tmp_path, data) -> str:
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("data, message", [
    ({"runs": [{"name": "../../x", "algorithm": "base"}]}, "run name '../../x' is not allowed"),
    ({"runs": [{"name": "/abs/path", "algorithm": "base"}]}, "run name '/abs/path' is not allowed"),
    ({"runs": [{"name": ".hidden", "algorithm": "base"}]}, "run name '.hidden' is not allowed"),
    ({"runs": [{"name": 7, "algorithm": "base"}]}, "run name 7 is not allowed"),
    ({"name": "../escape", "runs": [{"algorithm": "base"}]}, "suite name '../escape' is not allowed"),
    ({"runs": [{"algorithm": "dpo", "sweep": {"lora_target_modules": [["..", "x"]]}}]},
     "which cannot be a directory name"),
    ({"runs": [{"algorithm": "dpo", "seeds": [True]}]}, "seeds must be a non-empty list of integers, got [True]"),
    ({"runs": [{"algorithm": "dpo", "seeds": [1, 1]}]}, "seeds repeat a value"),
    ({"runs": [{"algorithm": "dpo", "settings": {"learning_rate": float("nan")}}]},
     "--learning-rate must be a finite number"),
    ({"runs": [{"name": "d-beta0.5", "algorithm": "dpo"},
               {"name": "d", "algorithm": "dpo", "sweep": {"beta": [0.5]}}]},
     "runs 'd-beta0.5' and 'd' both give the run id 'd-beta0.5-seed0'"),
    ({"runs": [{"name": "Run", "algorithm": "base"}, {"name": "run", "algorithm": "base"}]},
     "both give the run id 'run-seed0'"),
])
def test_hostile_suites_write_nothing(tmp_path, capsys, nothing_expensive, data, message):
    victim = tmp_path / "x"
    victim.mkdir()
    (victim / "keep.txt").write_text("precious")
    out = tmp_path / "deep" / "er" / "out"
    code = main(["bench", suite_file(tmp_path, data), "--output-dir", str(out)])
    assert_refused(capsys, code, 2, message)
    assert not (tmp_path / "deep").exists() and (victim / "keep.txt").read_text() == "precious"


def test_suite_into_a_directory_another_suite_is_writing(tmp_path, capsys, nothing_expensive):
    out = tmp_path / "out"
    held = rundir.claim(out)
    try:
        code = main(["bench", suite_file(tmp_path, {"runs": [{"algorithm": "base"}]}), "--output-dir", str(out)])
        assert_refused(capsys, code, 2, "another aligner run (pid ")
    finally:
        held.release()


def test_unsafe_algorithm_names_are_refused_at_registration():
    from aligner.registry import Algorithm, Registry, RegistryError

    registry = Registry()
    with pytest.raises(RegistryError, match=r"algorithm name '\.\./evil' from plugin 'p' is not allowed"):
        registry.add("algorithm", Algorithm("../evil", "", object, lambda c: None), "p")
