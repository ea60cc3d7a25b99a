"""Rewards named on the command line: resolution order, TRL's calling convention, checks of what comes back, weighted
sums, sequence-classification reward models (their own tokenizer and template, memory kept apart), and `evaluate`
modules as judges (`evaluate:<module>[#<key>]`)."""

from __future__ import annotations

import pytest

from aligner import plugins
from aligner.errors import TrainingError
from aligner.harness import memory
from aligner.reward import sources
from aligner.reward.sources import RewardError, scores_checked
from tests.fixtures import models

from test_metrics_modules import evaluate_cache  # noqa: F401  (a fixture: evaluate's caches in the session's folder)

REWARDS_PY = '''
def correct(prompts, completions, answer, **kwargs):
    return [1.0 if c.split()[:1] == [a] else 0.0 for c, a in zip(completions, answer)]

def seen(prompts, completions, **kwargs):
    seen.calls.append((prompts, completions, kwargs))
    return [len(c) for c in completions]
seen.calls = []

def old_style(prompts, responses):
    return [0.5 for _ in responses]

def raises_on_b(prompts, completions, **kwargs):
    if "b" in completions:
        raise KeyError("b")
    return [0.0] * len(completions)

def too_few(prompts, completions, **kwargs):
    return [0.0]

def nan_second(prompts, completions, **kwargs):
    return [0.0, float("nan")] + [0.0] * (len(completions) - 2)

def skips_odd(prompts, completions, **kwargs):
    return [None if i % 2 else 1.0 for i in range(len(completions))]

not_callable = 3
'''


@pytest.fixture
def rewards_file(tmp_path):
    path = tmp_path / "my_rewards.py"
    path.write_text(REWARDS_PY)
    return path


@pytest.fixture(scope="module")
def registry():
    return plugins.default().registry


def test_resolution_order_registered_then_callable_then_model(tmp_path, rewards_file, registry, monkeypatch):
    assert sources.resolve_reward("vader", registry, "--reward").kind == "registered"
    assert sources.resolve_reward(f"{rewards_file}:correct", registry, "--reward").kind == "callable"
    monkeypatch.syspath_prepend(str(tmp_path))
    assert sources.resolve_reward("my_rewards:correct", registry, "--reward").kind == "callable"
    folder = models.sequence_classifier(tmp_path / "rm")
    assert sources.resolve_reward(str(folder), registry, "--reward", load=False).kind == "classifier"
    with pytest.raises(RewardError, match=r"--reward nothing-here: unknown reward; give a registered name "
                                          r"\(answer-match, vader\)"):
        sources.resolve_reward("nothing-here", registry, "--reward")


def test_called_as_trl_calls_reward_funcs(rewards_file, registry):
    source = sources.resolve_reward(f"{rewards_file}:seen", registry, "--reward")
    prompts = [[{"role": "user", "content": "q"}], [{"role": "user", "content": "r"}]]
    completions = [[{"role": "assistant", "content": "abc"}], [{"role": "assistant", "content": "de"}]]
    scores_checked(source, prompts, completions, {"answer": ["1", "2"], "difficulty": ["easy", "hard"]})
    called_prompts, called_completions, kwargs = source.function.calls[-1]
    assert called_prompts == prompts and called_completions == completions
    assert kwargs == {"answer": ["1", "2"], "difficulty": ["easy", "hard"]}
    correct = sources.resolve_reward(f"{rewards_file}:correct", registry, "--reward")
    assert scores_checked(correct, ["p", "p"], ["4 .", "5"], {"answer": ["4", "4"]}) == [1.0, 0.0]
    legacy = sources.resolve_reward(f"{rewards_file}:old_style", registry, "--reward")
    assert scores_checked(legacy, ["p"], ["x"], {"answer": ["1"]}) == [0.5]


@pytest.mark.parametrize("name, message", [
    ("raises_on_b", r"reward .*:raises_on_b raised KeyError: 'b' on row 2 of 3 \(prompt 'p1'\) while training"),
    ("too_few", r"reward .*:too_few returned 1 scores for 3 rows while training"),
    ("nan_second", r"reward .*:nan_second returned nan for row 2 of 3 \(prompt 'p1'\) while training"),
])
def test_faults_name_the_reward_and_the_row(rewards_file, registry, name, message):
    source = sources.resolve_reward(f"{rewards_file}:{name}", registry, "--reward")
    with pytest.raises(TrainingError, match=message):
        scores_checked(source, ["p0", "p1", "p2"], ["a", "b", "c"], {})
    with pytest.raises(RewardError, match=message.replace("while training", "when probed")):
        scores_checked(source, ["p0", "p1", "p2"], ["a", "b", "c"], {}, error=RewardError, when="when probed")


def test_import_faults_are_input_errors(tmp_path, rewards_file, registry):
    with pytest.raises(RewardError, match=r"--reward .*my_rewards.py:absent: .*my_rewards.py has no function "
                                          r"'absent'"):
        sources.resolve_reward(f"{rewards_file}:absent", registry, "--reward")
    with pytest.raises(RewardError, match="has no function 'not_callable'"):
        sources.resolve_reward(f"{rewards_file}:not_callable", registry, "--reward")
    with pytest.raises(RewardError, match=r"no such file .*nowhere.py"):
        sources.resolve_reward(f"{tmp_path}/nowhere.py:f", registry, "--reward")
    with pytest.raises(RewardError, match=r"--gold-reward no_such_module_x:f: could not import no_such_module_x "
                                          r"\(ModuleNotFoundError"):
        sources.resolve_reward("no_such_module_x:f", registry, "--gold-reward")
    broken = tmp_path / "broken.py"
    broken.write_text("import nonexistent_package_y\n")
    with pytest.raises(RewardError, match="could not import .*broken.py .*nonexistent_package_y"):
        sources.resolve_reward(f"{broken}:f", registry, "--reward")


def test_weighted_sum_skips_none_as_trl_does():
    assert sources.weighted_sum([[1.0, None, 2.0], [0.5, 0.5, None]], [1.0, 2.0]) == [2.0, 1.0, 2.0]
    assert sources.weighted_sum([[None]], [1.0]) == [0]
    with pytest.raises(Exception, match="2 weights for 3 rewards"):
        sources.check_names(["a", "b", "c"], [1.0, 2.0])


def test_classifier_folders_are_checked_before_loading(tmp_path, registry):
    chat = models.chat_model(tmp_path / "chat")
    with pytest.raises(RewardError, match=r"not a sequence-classification reward model \(architectures: "
                                          r"Qwen2ForCausalLM\)"):
        sources.resolve_reward(str(chat), registry, "--gold-reward")
    two = models.sequence_classifier(tmp_path / "two", num_labels=2)
    with pytest.raises(RewardError, match="a sequence classifier with 2 labels; a reward model has one"):
        sources.resolve_reward(str(two), registry, "--reward")
    (tmp_path / "empty").mkdir()
    with pytest.raises(RewardError, match="a folder with no config.json: not a model"):
        sources.resolve_reward(str(tmp_path / "empty"), registry, "--reward")


def test_classifier_scores_through_its_own_template_and_tokenizer(tmp_path, registry):
    from transformers import AutoTokenizer

    folder = models.sequence_classifier(tmp_path / "rm", chat_template=True)
    source = sources.resolve_reward(str(folder), registry, "--gold-reward")
    scorer = source.function.__self__
    assert scorer.templated
    texts = scorer.texts(["the movie was"], [" great ."])
    own = AutoTokenizer.from_pretrained(folder)
    assert texts == [own.apply_chat_template([{"role": "user", "content": "the movie was"},
                                              {"role": "assistant", "content": "great ."}], tokenize=False)]
    good, bad, neutral = scores_checked(source, ["the movie was"] * 3, [" great fun .", " awful , dull .",
                                                                         " the plot ."], {})
    assert good > neutral > bad
    conversational = scores_checked(source, [[{"role": "user", "content": "the movie was"}]],
                                    [[{"role": "assistant", "content": "great fun ."}]], {})
    assert conversational[0] > 0
    plain = sources.resolve_reward(str(models.sequence_classifier(tmp_path / "plain", chat_template=False)), registry,
                            "--reward")
    assert plain.function.__self__.texts(["a"], ["b"]) == ["ab"]
    assert source.memory_mb == pytest.approx(sum(p.numel() * 4 for p in scorer.model.parameters()) / 2**20, rel=0.01)


def test_classifier_weights_and_activations_are_not_counted(tmp_path, registry):
    source = sources.resolve_reward(str(models.sequence_classifier(tmp_path / "rm")), registry, "--reward")
    model = source.function.__self__.model
    storages = {t.untyped_storage()._cdata: t.untyped_storage().nbytes()
                for t in [*model.parameters(), *model.buffers()]}

    def peak(score: bool) -> int:
        with memory.TensorMemory("cpu") as counted:
            if score:
                scores_checked(source, ["the movie was"] * 8, [" great fun ."] * 8, {})
        return counted.peak_bytes

    excluded = peak(score=False)
    assert peak(score=True) == excluded, "scoring adds nothing to the count"
    memory._excluded.discard(model)
    try:
        assert peak(score=False) - excluded == sum(storages.values()), "its weights, had they been counted"
    finally:
        memory.exclude(model)


JUDGE_PY = '''
import datasets
import evaluate


class Judge(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(description="a test judge", citation="", inputs_description="",
                                   features=datasets.Features({features}))

    def _compute(self, predictions, references=None):
        return {outputs}
'''
TEXT = 'datasets.Value("string")'


def judge_folder(root, name: str, outputs: str, features: str = f'{{"predictions": {TEXT}}}'):
    """An evaluate module folder, `<name>/<name>.py`, whose compute returns `outputs` (a Python expression)."""
    folder = root / name
    folder.mkdir()
    (folder / f"{name}.py").write_text(JUDGE_PY.format(features=features, outputs=outputs))
    return folder


with_evaluate_cache = pytest.mark.usefixtures("evaluate_cache")


@with_evaluate_cache
def test_an_evaluate_module_judges_the_responses(tmp_path, registry):
    folder = judge_folder(tmp_path, "length_judge", '{"scores": [len(p) for p in predictions], "mean": 0.0}')
    source = sources.resolve_reward(f"evaluate:{folder}", registry, "--gold-reward")
    assert source.kind == "evaluate"
    assert scores_checked(source, ["p1", "p2"], ["abc", "de"], {"answer": ["x", "y"]}) == [3.0, 2.0]
    conversational = scores_checked(source, [[{"role": "user", "content": "q"}]],
                                    [[{"role": "assistant", "content": "abcd"}]], {})
    assert conversational == [4.0], "a message list is scored as its text"
    assert sources.resolve_reward(f"evaluate:{folder}", registry, "--gold-reward", load=False).kind == "evaluate"


@with_evaluate_cache
def test_an_evaluate_module_with_references_gets_the_prompts(tmp_path, registry):
    folder = judge_folder(tmp_path, "echo_judge",
                          '{"echoes": [float(r in p) for p, r in zip(predictions, references)], '
                          '"prompt_chars": [len(r) for r in references], "count": len(predictions)}',
                          features=f'{{"predictions": {TEXT}, "references": {TEXT}}}')
    echoes = sources.resolve_reward(f"evaluate:{folder}#echoes", registry, "--reward")
    assert scores_checked(echoes, ["good", "bad"], ["good day", "fine day"], {}) == [1.0, 0.0]
    chars = sources.resolve_reward(f"evaluate:{folder}#prompt_chars", registry, "--reward")
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]]
    assert scores_checked(chars, prompts, [[{"role": "assistant", "content": "yo"}]], {}) == [len("be brief\nhi")]

    def refusal(spec: str) -> str:
        source = sources.resolve_reward(spec, registry, "--reward")
        with pytest.raises(TrainingError) as raised:
            scores_checked(source, ["good"], ["good day"], {})
        return str(raised.value)

    assert "returned 2 list-valued outputs (echoes, prompt_chars, count); name the scores' key: " \
           f"evaluate:{folder}#<key>" in refusal(f"evaluate:{folder}")
    assert "evaluate module echo_judge returned no 'score' (its outputs: echoes, prompt_chars, count)" in \
           refusal(f"evaluate:{folder}#score")
    assert "evaluate module echo_judge, key 'count': int, not a list of one score per response" in \
           refusal(f"evaluate:{folder}#count")


@with_evaluate_cache
def test_an_evaluate_module_can_take_a_named_column_as_references(tmp_path, registry):
    folder = judge_folder(tmp_path, "match_judge",
                          '{"matches": [float(p.strip() == r) for p, r in zip(predictions, references)]}',
                          features=f'{{"predictions": {TEXT}, "references": {TEXT}}}')
    source = sources.resolve_reward(f"evaluate:{folder}#matches?references=answer", registry, "--reward")
    assert scores_checked(source, ["2+2?", "3+3?"], [" 4", "7"], {"answer": ["4", "6"]}) == [1.0, 0.0]
    with pytest.raises(TrainingError, match=r"the rows have no column 'answer' for its references \(their columns: "
                                            r"label\)"):
        scores_checked(source, ["2+2?"], ["4"], {"label": ["4"]})
    plain = judge_folder(tmp_path, "plain_judge", '{"scores": [1.0 for p in predictions]}')
    with pytest.raises(sources.RewardError, match="the evaluate module takes no references"):
        sources.resolve_reward(f"evaluate:{plain}?references=answer", registry, "--reward")


@with_evaluate_cache
@pytest.mark.parametrize("outputs, message", [
    ('{"scores": [str(len(p)) for p in predictions]}', r"evaluate module bad_judge, key 'scores': '1' is not a number"),
    ('{"scores": [None for p in predictions]}', r"evaluate module bad_judge, key 'scores': None is not a number"),
    ('{"scores": [1.0]}', r"evaluate module bad_judge, key 'scores': 1 scores for 2 responses"),
    ('{"mean": 1.0}', r"evaluate module bad_judge returned no list-valued outputs \(mean\); name the scores' key"),
])
def test_an_evaluate_module_must_give_one_number_per_response(tmp_path, registry, outputs, message):
    source = sources.resolve_reward(f"evaluate:{judge_folder(tmp_path, 'bad_judge', outputs)}", registry,
                                    "--gold-reward")
    with pytest.raises(RewardError, match=r"reward evaluate:.*bad_judge raised RewardError: " + message):
        scores_checked(source, ["p0", "p1"], ["a", "b"], {}, error=RewardError, when="when probed")


@with_evaluate_cache
def test_evaluate_modules_that_cannot_load_are_one_line_refusals(tmp_path, registry):
    def refusal(spec: str) -> str:
        with pytest.raises(RewardError) as raised:
            sources.resolve_reward(spec, registry, "--gold-reward")
        assert "\n" not in str(raised.value)
        return str(raised.value)

    assert refusal(f"evaluate:{tmp_path}/nowhere") == f"--gold-reward evaluate:{tmp_path}/nowhere: no such " \
                                                      f"evaluate module {tmp_path}/nowhere"
    (tmp_path / "empty").mkdir()
    assert f"the folder {tmp_path}/empty has no empty.py" in refusal(f"evaluate:{tmp_path}/empty")
    offline = refusal("evaluate:accuracy")
    assert offline.startswith("--gold-reward evaluate:accuracy: could not load the evaluate module accuracy (")
    assert offline.endswith("a hub name needs the network or evaluate's cached copy")
    broken = judge_folder(tmp_path, "broken_judge", "{}")
    (broken / "broken_judge.py").write_text("import datasets\nimport evaluate\nraise ImportError('no judge')\n")
    assert "could not load the evaluate module" in refusal(f"evaluate:{broken}")
    data_only = judge_folder(tmp_path, "data_judge", "{}", features=f'{{"data": {TEXT}}}')
    assert "the evaluate module takes no predictions (its inputs: data)" in refusal(f"evaluate:{data_only}")
    assert "an empty key after '#'" in refusal(f"evaluate:{data_only}#")
