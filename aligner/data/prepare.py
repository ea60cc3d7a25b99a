"""A run's data, the same way for every algorithm: the training rows in their layout's normal form, the held-out
evaluation rows (prompts with their other columns, for a judge that reads them), the preference pairs a reward
model trains on, and a report of what was found, dropped and truncated (printed at start and kept in
summary.json)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from aligner.data import heldout, layouts, rows, sources
from aligner.data.layouts import PREFERENCE, PROMPT, UNPAIRED, Layout
from aligner.errors import DatasetError

TOY = "aligner-toy"
TOY_VERDICTS = "aligner-toy-verdicts"
TRUNCATION_SAMPLE = 2000
"""Rows tokenized to count what --max-length truncates; all rows when there are fewer."""


@dataclass
class Rows:
    """One dataset read, mapped, normalised and checked."""

    dataset: object
    layout: Layout
    where: str
    check: rows.RowCheck


@dataclass
class RunData:
    train: Rows
    eval_rows: object                  # datasets.Dataset: one row per held-out prompt, every column kept
    eval_where: str
    eval_layout: Layout
    reward_pairs: Rows | None = None   # preference rows for a reward model trained in the run
    report: dict = field(default_factory=dict)

    @property
    def eval_prompts(self) -> list:
        return self.eval_rows["prompt"]

    @property
    def eval_columns(self) -> dict[str, list]:
        return {name: self.eval_rows[name] for name in self.eval_rows.column_names if name != "prompt"}


def parse_columns(text: str | None) -> dict[str, str]:
    """`prompt=question,chosen=response_j` as {target: source}; refused naming the flag."""
    if not text:
        return {}
    mapping = {}
    for part in text.split(","):
        target, sep, source = part.partition("=")
        target, source = target.strip(), source.strip()
        if not sep or not target or not source:
            raise DatasetError(f"--columns {text}: expected NAME=COLUMN pairs separated by commas, e.g. "
                               f"prompt=question,chosen=response_j; got {part!r}")
        if target in mapping:
            raise DatasetError(f"--columns {text}: {target!r} is mapped twice")
        mapping[target] = source
    return mapping


def map_columns(dataset, mapping: dict[str, str], where: str, strict: bool = True):
    """Renames source columns to aligner's names; a column already holding a target name is dropped first. Not
    `strict` (another dataset than --dataset: held-out or reward pairs), a mapping whose column is absent is
    skipped."""
    if not strict:
        mapping = {t: s for t, s in mapping.items() if s in dataset.column_names}
    missing = [source for source in mapping.values() if source not in dataset.column_names]
    if missing:
        raise DatasetError(f"{where}: --columns names {', '.join(map(repr, missing))}, not a column of the data "
                           f"(columns: {', '.join(dataset.column_names)})")
    replaced = [t for t in mapping if t in dataset.column_names and t not in mapping.values()]
    if replaced:
        dataset = dataset.remove_columns(replaced)
    renames = {source: target for target, source in mapping.items() if source != target}
    return dataset.rename_columns(renames) if renames else dataset


def read(source: sources.Source, mapping: dict[str, str], strict: bool = True) -> Rows:
    """Loads, maps columns, detects the layout, refuses broken rows, normalises, and drops rows that cannot train."""
    loaded = sources.load(source)
    where = loaded.where
    dataset = map_columns(loaded.dataset, mapping, where, strict)
    layout = layouts.detect(dataset, where)
    rows.check_messages(dataset, where, ("prompt", "chosen", "rejected", "completion", "messages"))
    if layout.kind == UNPAIRED:
        dataset = rows.labels_as_bool(dataset, where)
    if layout.transform:
        dataset = _normalised(dataset, layout.transform)
    return _keep_usable(Rows(dataset, layout, where, None))


def _normalised(dataset, transform: str):
    """`dataset` through one of `layouts.normalise`'s transforms, written in the same record batches as a load."""
    return dataset.map(layouts.normalise, batched=True, fn_kwargs={"transform": transform},
                       writer_batch_size=sources.WRITER_BATCH, desc=f"rows: {transform.replace('_', ' ')}")


def _keep_usable(read_rows: Rows) -> Rows:
    check = rows.usable_rows(read_rows.dataset, read_rows.layout)
    rows.refuse_if_mostly_unusable(check, read_rows.where)
    dataset = read_rows.dataset
    if check.dropped:
        dataset = dataset.select(check.kept)
        check.keys = check.keys[check.kept]
    if layouts.PROBLEM in dataset.column_names:
        dataset = dataset.remove_columns(layouts.PROBLEM)
    if read_rows.check is not None:  # a second pass (transcripts as messages): both passes' drops count
        check.total = read_rows.check.total
        check.reasons.update(read_rows.check.reasons)
        for reason, first in read_rows.check.first.items():
            check.first.setdefault(reason, first)
    return Rows(dataset, read_rows.layout, read_rows.where, check)


def _toy_source(spec: str) -> tuple[str, str | None]:
    """The embedded default's files for `aligner-toy` and `aligner-toy-verdicts`: (training, evaluation)."""
    from aligner.toy import verdicts, world

    if spec == TOY:
        built = world.ensure()
        return str(built.train_path), str(built.eval_prompts_path)
    return str(verdicts.ensure()), None


def _describe_needs(accepts: tuple[str, ...]) -> str:
    return " or ".join(layouts.KIND_NAMES[kind] for kind in accepts)


def load_for_run(cfg, accepts: tuple[str, ...], algorithm: str, reward_pairs_needed: bool = False) -> RunData:
    """Training rows and held-out evaluation rows, the same way for every algorithm; `accepts` is the layouts the
    algorithm trains on (an online method takes any, reading only its prompts)."""
    mapping = parse_columns(cfg.columns)
    spec, eval_file = cfg.dataset, None
    split = cfg.dataset_split
    if spec in (TOY, TOY_VERDICTS):
        spec, eval_file = _toy_source(spec)
    train = read(sources.Source(spec, cfg.dataset_config, split, "--dataset"), mapping)
    if train.layout.kind not in accepts:
        raise DatasetError(f"{train.where}: {algorithm} trains on {_describe_needs(accepts)} rows; these are "
                           f"{train.layout.name} (columns: {', '.join(train.dataset.column_names)})")
    drawn, keys = heldout.draw(train.dataset, cfg.max_samples, cfg.seed, train.check.keys)

    eval_spec, eval_split = cfg.eval_dataset, cfg.eval_split
    if eval_spec is None and eval_split is None and eval_file is not None:
        eval_spec = eval_file
    if cfg.dataset == TOY_VERDICTS and eval_spec is None and eval_split is None:
        eval_split = "test"
    if eval_spec is not None or eval_split is not None:
        same = eval_spec is None
        held = read(sources.Source(spec if same else eval_spec, cfg.dataset_config if same else None, eval_split,
                                   "--eval"), mapping, strict=same)
        eval_rows, eval_where, eval_layout = heldout.distinct_prompts(held.dataset, held.check.keys), held.where, \
            held.layout
    else:
        drawn, eval_rows = heldout.split_held_out(drawn, cfg.eval_prompts, train.where, keys)
        eval_where, eval_layout = f"{train.where}, held out", train.layout
    eval_rows = eval_rows.select(range(min(cfg.eval_prompts, len(eval_rows))))
    train.check.keys = None  # of the rows before the draw and the split; not needed after them
    train = Rows(drawn, train.layout, train.where, train.check)

    pairs = None
    if reward_pairs_needed:
        pairs = _reward_pairs(cfg, train, mapping)
    data = RunData(train, eval_rows, eval_where, eval_layout, pairs)
    data.report = _report(data, cfg)
    return data


def _reward_pairs(cfg, train: Rows, mapping) -> Rows:
    """Preference pairs for a reward model trained in the run: the training rows when they are pairs, else
    --reward-dataset."""
    reward_dataset = getattr(cfg, "reward_dataset", None)
    if reward_dataset is None:
        if train.layout.kind == PREFERENCE:
            return train
        raise DatasetError(f"{train.where}: {train.layout.name} rows have no preference pairs to train the reward "
                           f"model (--reward model) on: give --reward-dataset with preference pairs, a trained "
                           f"--reward-model DIR, or another --reward (a registered function, module:function, "
                           f"file.py:function, or a sequence-classification model)")
    pairs = read(sources.Source(reward_dataset, None, None, "--reward-dataset"), mapping, strict=False)
    if pairs.layout.kind != PREFERENCE:
        raise DatasetError(f"--reward-dataset {pairs.where}: a reward model trains on preference rows; these are "
                           f"{pairs.layout.name}")
    return pairs


def _report(data: RunData, cfg) -> dict:
    train = data.train
    report = {"source": train.where, "layout": train.layout.name, "prompt": train.layout.prompt,
              "rows": train.check.total, "dropped": train.check.dropped,
              "dropped_reasons": dict(train.check.reasons), "columns_ignored": list(train.layout.ignored),
              "train_rows": len(train.dataset), "eval_source": data.eval_where, "eval_prompts": len(data.eval_rows)}
    if cfg.max_samples is not None:
        report["max_samples"] = cfg.max_samples
    if data.reward_pairs is not None and data.reward_pairs is not train:
        report["reward_pairs"] = {"source": data.reward_pairs.where, "rows": len(data.reward_pairs.dataset)}
    return report


# --- what needs the tokenizer: chat templates, transcripts as messages, truncation ---------------------------


def _conversational(dataset) -> bool:
    return "prompt" in dataset.column_names and layouts.column_kind(dataset, "prompt") == "messages"


def _as_messages(read_rows: Rows) -> Rows:
    """hh-style transcripts as chat messages, for a model that has a chat template."""
    if read_rows.layout.transform != "transcript":
        return read_rows
    dataset = _normalised(read_rows.dataset, "transcript_to_messages")
    layout = Layout(read_rows.layout.kind, True, read_rows.layout.prompt + ", as chat messages",
                    read_rows.layout.ignored, "transcript_to_messages")
    return _keep_usable(Rows(dataset, layout, read_rows.where, read_rows.check))


def fit_to_tokenizer(data: RunData, tokenizer, model: str, max_length: int, prompt_budget: int | None) -> None:
    """Before any weights load: conversational rows need a chat template; transcripts become messages where the
    model has one; and what --max-length truncates is counted (`prompt_budget`: the prompt tokens an online
    method keeps, None for methods that train on answers)."""
    has_template = bool(getattr(tokenizer, "chat_template", None))
    named = [(data.train.where, data.train.dataset), (data.eval_where, data.eval_rows)]
    if data.reward_pairs is not None:
        named.append((data.reward_pairs.where, data.reward_pairs.dataset))
    if not has_template:
        for where, dataset in named:
            if _conversational(dataset):
                raise DatasetError(f"{where}: rows are conversational (message lists), but the tokenizer of --model "
                                   f"{model} has no chat template; give plain strings, or a model that has one")
    else:  # transcripts become messages wherever they are, so training and evaluation read the same template
        shared = data.reward_pairs is data.train
        data.train = _as_messages(data.train)
        if data.eval_layout.transform == "transcript":
            data.eval_rows = _normalised(data.eval_rows, "transcript_to_messages").filter(
                lambda row: row[layouts.PROBLEM] is None).remove_columns(layouts.PROBLEM)
        if shared:
            data.reward_pairs = data.train
        elif data.reward_pairs is not None:
            data.reward_pairs = _as_messages(data.reward_pairs)
        data.report.update(layout=data.train.layout.name, prompt=data.train.layout.prompt,
                           dropped=data.train.check.dropped, dropped_reasons=dict(data.train.check.reasons),
                           train_rows=len(data.train.dataset))
    data.report["truncation"] = truncation(data.train, tokenizer, max_length, prompt_budget)


def truncation(read_rows: Rows, tokenizer, max_length: int, prompt_budget: int | None) -> dict:
    """How many of (a sample of) the rows --max-length cuts: prompts and answers as the encoder cuts them."""
    from aligner.data.encoding import token_ids

    dataset = read_rows.dataset
    n = len(dataset)
    sample = range(n) if n <= TRUNCATION_SAMPLE else sorted(random.Random(0).sample(range(n), TRUNCATION_SAMPLE))
    picked = dataset.select(sample)
    counts = {"rows_checked": len(picked), "of_rows": n, "prompts_cut": 0, "answers_cut": 0}
    answers = {PREFERENCE: ("chosen", "rejected"), UNPAIRED: ("completion",), PROMPT: ()}[read_rows.layout.kind]
    if prompt_budget is not None or not answers:
        budget = prompt_budget if prompt_budget is not None else max_length
        for prompt in picked["prompt"]:
            prompt_ids, _ = token_ids(tokenizer, prompt, _empty_answer(prompt))
            counts["prompts_cut"] += len(prompt_ids) > budget
        return counts
    for row in picked:
        cut_prompt = cut_answer = False
        for name in answers:
            prompt_ids, answer_ids = token_ids(tokenizer, row["prompt"], row[name])
            if len(prompt_ids) + len(answer_ids) > max_length:
                kept = max_length - min(len(prompt_ids), max_length // 2)
                cut_answer |= len(answer_ids) > kept
                cut_prompt |= len(prompt_ids) > max_length - min(len(answer_ids), kept)
        counts["prompts_cut"] += cut_prompt
        counts["answers_cut"] += cut_answer
    return counts


def _empty_answer(prompt):
    return [{"role": "assistant", "content": ""}] if isinstance(prompt, list) else ""


def start_line(data: RunData) -> str:
    """One line: rows, layout, how the prompt was found, columns ignored, rows dropped, truncation."""
    r = data.report
    parts = [f"{r['source']}: {r['rows']:,} rows, {r['layout']}; prompt from {r['prompt']}"]
    if r["columns_ignored"]:
        parts.append(f"columns ignored: {', '.join(r['columns_ignored'])}")
    if r["dropped"]:
        parts.append(f"dropped {r['dropped']:,} that cannot train ({data.train.check.describe()})")
    if "max_samples" in r:
        parts.append(f"--max-samples {r['max_samples']:,}")
    parts.append(f"training on {r['train_rows']:,} rows; evaluating {r['eval_prompts']} prompts of "
                 f"{r['eval_source']}")
    cut = r.get("truncation")
    if cut:
        sampled = "" if cut["rows_checked"] == cut["of_rows"] else f" (of {cut['rows_checked']:,} sampled rows)"
        parts.append(f"--max-length cuts {cut['prompts_cut']:,} prompts and {cut['answers_cut']:,} answers"
                     f"{sampled}")
    return "aligner: data: " + "; ".join(parts)
