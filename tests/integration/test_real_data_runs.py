"""Real users' data and rewards, end to end: DPO, KTO and GRPO train on every dataset layout and source (where
the layout fits them) with a tiny chat-template model (Qwen2.5-Instruct's layout) and a tiny no-pad BOS model
without a template (Llama-3 base's layout); online methods train on prompt-only data with a reward that reads a
column; a sequence-classification model judges; bad rewards are refused before training."""

from __future__ import annotations

import json

import pytest

import aligner
from aligner.cli import main
from tests.fixtures import layouts, models

SMALL = dict(max_steps=2, batch_size=4, eval_prompts=4, eval_max_new_tokens=4, max_length=64, tensor_memory="off")
ONLINE = dict(prompts_per_step=2, samples_per_prompt=2, response_length=8)

REWARDS_PY = '''
def correct(prompts, completions, answer, **kwargs):
    """1 when the completion's first word is the answer (a verifiable reward)."""
    out = []
    for completion, expected in zip(completions, answer):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        out.append(1.0 if text.split()[:1] == [expected] else 0.0)
    return out

def short(prompts, completions, **kwargs):
    return [-len(c if isinstance(c, str) else c[-1]["content"]) / 10 for c in completions]

def raises(prompts, completions, **kwargs):
    raise ValueError("no answer key")

def wrong_length(prompts, completions, **kwargs):
    return [1.0]
'''


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("real")
    (root / "rewards.py").write_text(REWARDS_PY)
    return {"chat": models.chat_model(root / "chat"), "nopad": models.nopad_bos_model(root / "nopad"),
            "rm": models.sequence_classifier(root / "rm"), "rewards": root / "rewards.py", "root": root}


PREFERENCE_LAYOUTS = {
    # name: (writer, extra settings, models it runs on)
    "standard": (layouts.standard_explicit, {}, ("chat", "nopad")),
    "conversational": (layouts.conversational_explicit, {}, ("chat",)),
    "trl-ultrafeedback-implicit": (layouts.trl_ultrafeedback, {}, ("chat",)),
    "hh-rlhf": (layouts.hh_rlhf, {}, ("chat", "nopad")),
    "h4-ultrafeedback-folder": (layouts.h4_ultrafeedback, {"dataset_split": "train_prefs",
                                                           "eval_split": "test_prefs"}, ("chat",)),
    "stack-exchange-columns": (layouts.stack_exchange_paired,
                               {"columns": "prompt=question,chosen=response_j,rejected=response_k"},
                               ("chat", "nopad")),
    "save-to-disk": (layouts.save_to_disk_dataset, {}, ("nopad",)),
    "save-to-disk-dict": (layouts.save_to_disk_dict, {"eval_split": "test"}, ("chat",)),
}
UNPAIRED_LAYOUTS = {"kto-unpaired": layouts.kto_unpaired, "kto-int-labels": layouts.kto_unpaired_int_labels}
PROMPT_LAYOUTS = {"prompt-only": (layouts.prompt_only_with_answer, ("chat", "nopad")),
                  "prompt-only-conversational": (layouts.prompt_only_conversational, ("chat",))}


def cases():
    for name, (_, _, on) in PREFERENCE_LAYOUTS.items():
        for model in on:
            yield pytest.param("dpo", name, model, id=f"dpo-{name}-{model}")
            yield pytest.param("kto", name, model, id=f"kto-{name}-{model}")
            yield pytest.param("grpo", name, model, id=f"grpo-{name}-{model}")
    for name in UNPAIRED_LAYOUTS:
        for model in ("chat", "nopad"):
            yield pytest.param("kto", name, model, id=f"kto-{name}-{model}")
    for name, (_, on) in PROMPT_LAYOUTS.items():
        for model in on:
            yield pytest.param("grpo", name, model, id=f"grpo-{name}-{model}")


def dataset_for(name, folder):
    if name in PREFERENCE_LAYOUTS:
        writer, extra, _ = PREFERENCE_LAYOUTS[name]
        return writer(folder), dict(extra)
    if name in UNPAIRED_LAYOUTS:
        return UNPAIRED_LAYOUTS[name](folder), {}
    return PROMPT_LAYOUTS[name][0](folder), {}


@pytest.mark.parametrize("algorithm, layout, model", list(cases()))
def test_trains_end_to_end_on_every_layout_and_source(tmp_path, built, algorithm, layout, model):
    path, extra = dataset_for(layout, tmp_path / "data")
    settings = {**SMALL, **extra}
    if algorithm == "grpo":
        settings.update(ONLINE)
        # prompt-only rows carry an answer a reward reads; preference rows are scored by a hub-style reward model
        settings["reward"] = [f"{built['rewards']}:correct"] if layout in PROMPT_LAYOUTS else [str(built["rm"])]
    summary = aligner.run(algorithm, model=str(built[model]), dataset=str(path), output_dir=str(tmp_path / "run"),
                          **settings)
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert summary["gold_reward_after"] is not None and summary["judge"] == "vader"
    data = summary["data"]
    assert data["rows"] >= 40 and data["dropped"] == 0 and data["eval_prompts"] == 4
    if layout == "hh-rlhf":
        assert ("as chat messages" in data["prompt"]) == (model == "chat")
    if algorithm == "grpo":
        assert summary["reward"] == settings["reward"][0]
        metrics = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert len(metrics) == 2 and all("objective/scores" in row for row in metrics)


def test_the_docs_hub_example_on_a_local_copy_of_its_layout(tmp_path, built, capsys):
    """docs/running.md's `aligner run dpo --model Qwen/Qwen2.5-0.5B --dataset trl-lib/ultrafeedback_binarized`, with
    a local model and a local file in the same layouts (no network here)."""
    path = layouts.trl_ultrafeedback(tmp_path)
    code = main(["run", "dpo", "--model", str(built["chat"]), "--dataset", str(path), "--output-dir",
                 str(tmp_path / "run"), "--max-steps", "2", "--eval-prompts", "4", "--eval-max-new-tokens", "4"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert (f"aligner: data: {path}: 40 rows, preference (prompt/chosen/rejected), conversational; prompt from the "
            f"turns before the last assistant turn that both answers share (implicit prompt); columns ignored: "
            f"score_chosen, score_rejected") in err


def test_online_method_on_prompt_only_data_with_a_column_reading_reward(tmp_path, built):
    """Two rewards summed with weights, each reading the rows' columns; the judge reads the held-out rows' answer."""
    path = layouts.prompt_only_with_answer(tmp_path)
    rewards = [f"{built['rewards']}:correct", f"{built['rewards']}:short"]
    summary = aligner.run("rloo", model=str(built["chat"]), dataset=str(path), output_dir=str(tmp_path / "run"),
                          reward=rewards, reward_weights=[1.0, 0.5], gold_reward=rewards[0], **SMALL, **ONLINE)
    assert summary["reward"] == f"1 x {rewards[0]} + 0.5 x {rewards[1]}" and summary["judge"] == rewards[0]
    samples = json.loads((tmp_path / "run" / "samples.json").read_text())["policy"]
    assert all(s["gold"] in (0.0, 1.0) for s in samples), "the judge checked each held-out row's own answer"


def test_ppo_on_prompt_only_data_trains_its_reward_model_on_reward_dataset(tmp_path, built, capsys):
    prompts = layouts.prompt_only_with_answer(tmp_path)
    pairs = layouts.standard_explicit(tmp_path)
    args = ["run", "ppo", "--model", str(built["chat"]), "--dataset", str(prompts), "--output-dir",
            str(tmp_path / "run"), "--max-steps", "1", "--prompts-per-step", "4", "--batch-size", "4",
            "--response-length", "8", "--reward-model-steps", "2", "--eval-prompts", "4", "--eval-max-new-tokens",
            "4"]
    assert main(args) == 2
    assert "no preference pairs to train the reward model (--reward model) on: give --reward-dataset" in \
        capsys.readouterr().err
    assert main([*args, "--reward-dataset", str(pairs)]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["reward_model_accuracy"] is not None
    assert summary["data"]["reward_pairs"] == {"source": str(pairs), "rows": 40}


def test_a_sequence_classifier_judges_the_evaluation(tmp_path, built, capsys):
    summary = aligner.run("dpo", model=str(built["chat"]), dataset=str(layouts.standard_explicit(tmp_path)),
                          gold_reward=str(built["rm"]), output_dir=str(tmp_path / "run"), **SMALL)
    assert summary["judge"] == str(built["rm"])
    assert summary["reward_model_weights_mb"][str(built["rm"])] > 0
    samples = json.loads((tmp_path / "run" / "samples.json").read_text())["policy"]
    scorer = models.sentiment_score
    from transformers import AutoTokenizer

    own = AutoTokenizer.from_pretrained(built["rm"])
    positive = [s for s in samples if scorer(own, s["response"]) > 0]
    negative = [s for s in samples if scorer(own, s["response"]) < 0]
    assert all(p["gold"] > n["gold"] for p in positive for n in negative), "the judge's scores follow its model"


@pytest.mark.parametrize("reward, message", [
    ("{rewards}:raises", "reward {rewards}:raises raised ValueError: no answer key on row 1 of 4"),
    ("{rewards}:wrong_length", "reward {rewards}:wrong_length returned 1 scores for 4 rows when probed before "
                               "training"),
    ("{rewards}:absent", "{rewards} has no function 'absent'"),
    ("{chat}", "not a sequence-classification reward model (architectures: Qwen2ForCausalLM)"),
])
def test_bad_rewards_are_refused_before_training(tmp_path, built, capsys, monkeypatch, reward, message):
    import aligner.harness.evaluation

    def refuse(*args, **kwargs):
        raise AssertionError("the base was evaluated before the bad reward was refused")

    monkeypatch.setattr(aligner.harness.evaluation, "evaluate", refuse)
    names = {"rewards": built["rewards"], "chat": built["chat"]}
    path = layouts.prompt_only_with_answer(tmp_path)
    code = main(["run", "grpo", "--model", str(built["chat"]), "--dataset", str(path), "--reward",
                 reward.format(**names), "--output-dir", str(tmp_path / "out"), "--eval-prompts", "4"])
    err = capsys.readouterr().err
    assert code == 2 and message.format(**names) in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_a_judge_that_cannot_read_the_eval_rows_is_refused(tmp_path, built, capsys):
    """answer-match reads an 'answer' column; the toy's held-out prompts have none."""
    code = main(["run", "dpo", "--gold-reward", "answer-match", "--output-dir", str(tmp_path / "out"),
                 "--eval-prompts", "4"])
    err = capsys.readouterr().err
    assert code == 2 and "reward answer-match raised ValueError: answer-match reads an 'answer' column" in err, err


VERDICTS = ["--dataset", "aligner-toy-verdicts", "--reward", "answer-match", "--gold-reward", "answer-match",
            "--samples-per-prompt", "16", "--prompts-per-step", "8", "--batch-size", "32", "--response-length", "4",
            "--missing-eos-penalty", "0", "--max-steps", "100"]
"""The embedded prompt-only task as docs/data.md runs it."""


@pytest.mark.slow
def test_grpo_learns_the_embedded_verdicts_task_from_its_answer_column(tmp_path, toy_world):
    assert main(["run", "grpo", *VERDICTS, "--output-dir", str(tmp_path / "run")]) == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["judge"] == "answer-match" and summary["reward"] == "answer-match"
    # 256 held-out prompts: a standard error near 0.015 at these rates
    assert summary["gold_reward_after"] >= summary["gold_reward_before"] + 0.03, summary
