"""The dataset layouts aligner reads, with TRL's names for them, and how each becomes one of three normal forms:

- preference: `prompt`, `chosen`, `rejected`, the prompt explicit (a column) or implicit (inside both answers);
- unpaired preference: `prompt`, `completion`, `label` (a boolean: a desirable completion or not), for KTO;
- prompt-only: `prompt`, every other column kept (an `answer` a reward can check, a `completion`, ...).

Each is standard (strings) or conversational (lists of `{"role", "content"}` messages). Implicit prompts are found
the way the data was written: for messages, the turns both answers share (TRL's `extract_prompt`, whose message
case this matches); for transcripts such as Anthropic/hh-rlhf, everything up to the last assistant turn both
answers share, never the character-level common prefix (which moves a first word both answers share into the
prompt). A conversation that repeats the user turn in each answer (HuggingFaceH4/ultrafeedback_binarized) takes its
prompt from the conversation; a string prompt with message answers becomes a user message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa

from aligner.data.kinds import PREFERENCE, PROMPT, UNPAIRED
from aligner.errors import DatasetError

PROBLEM = "__aligner_problem"
"""A column a normalising map adds: why a row cannot train (None when it can); read and dropped by the row check."""

ASSISTANT_TURNS = ("\n\nAssistant:", "\nAssistant:", "### Assistant:", "ASSISTANT:", "<|assistant|>")
"""Markers of an assistant turn in a plain-text transcript; the last one both answers share ends the prompt."""
HH_TURNS = re.compile(r"\n\n(Human|Assistant):")
"""Anthropic/hh-rlhf's turn markers, which a model with a chat template reads as messages instead."""

KIND_NAMES = {PREFERENCE: "preference (prompt/chosen/rejected)", UNPAIRED: "unpaired preference "
              "(prompt/completion/label)", PROMPT: "prompt-only"}


@dataclass(frozen=True)
class Layout:
    kind: str                    # PREFERENCE, UNPAIRED or PROMPT
    conversational: bool
    prompt: str                  # how the prompt was found, for the start line
    ignored: tuple[str, ...] = ()
    transform: str | None = None  # the normalising step rows need, if any

    @property
    def name(self) -> str:
        return f"{KIND_NAMES[self.kind]}, {'conversational' if self.conversational else 'standard'}"


def column_kind(dataset, name: str) -> str:
    """"text", "messages", "bool", "int" or another Arrow type's name, from the schema alone."""
    kind = dataset.data.schema.field(name).type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "text"
    if (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and pa.types.is_struct(kind.value_type):
        fields = {kind.value_type.field(i).name for i in range(kind.value_type.num_fields)}
        if "role" in fields or "content" in fields:
            return "messages"
    if pa.types.is_boolean(kind):
        return "bool"
    if pa.types.is_integer(kind):
        return "int"
    if pa.types.is_null(kind):
        return "null"
    return str(kind)


def _kind_of(value) -> str:
    if isinstance(value, list):
        return "a message list"
    return "a string" if isinstance(value, str) else type(value).__name__


def _type_error(dataset, where: str, name: str) -> DatasetError:
    """Names the first row whose value is of the wrong kind, as a reader of the file would see it: a column that
    mixes strings and message lists (which `datasets` reads as JSON values) names the first row that differs."""
    values = dataset[name]
    first = next((i for i, v in enumerate(values) if v is not None), 0)
    value = values[first] if values else None
    if isinstance(value, (str, list)):
        for row, other in enumerate(values):
            if other is not None and _kind_of(other) != _kind_of(value):
                return DatasetError(f"{where}: row {row + 1}: field {name!r} is {_kind_of(other)} but row {first + 1} "
                                    f"has {_kind_of(value)}; one file must use one format per field (strings, or "
                                    f"lists of messages)")
    return DatasetError(f"{where}: row {first + 1}: field {name!r}: expected a non-empty string or list of messages, "
                        f"got {type(value).__name__} {value!r}"[:400])


def _text_or_messages(dataset, where: str, name: str) -> str:
    kind = column_kind(dataset, name)
    if kind not in ("text", "messages"):
        raise _type_error(dataset, where, name)
    return kind


def detect(dataset, where: str) -> Layout:
    """The layout of `dataset` from its columns and their types; refused naming what was found."""
    columns = set(dataset.column_names)
    if len(dataset) == 0:
        raise DatasetError(f"{where}: no rows")
    if ("chosen" in columns) != ("rejected" in columns):
        has, missing = ("chosen", "rejected") if "chosen" in columns else ("rejected", "chosen")
        raise DatasetError(f"{where}: column {has!r} without {missing!r} (columns: {', '.join(dataset.column_names)})"
                           f"; map other names with --columns")
    if "chosen" in columns:
        return _preference(dataset, where, columns)
    if {"prompt", "completion", "label"} <= columns:
        kind = _text_or_messages(dataset, where, "prompt")
        if _text_or_messages(dataset, where, "completion") != kind:
            raise DatasetError(f"{where}: 'prompt' and 'completion' must both be strings or both message lists")
        return Layout(UNPAIRED, kind == "messages", "column 'prompt'", _extra(columns, "prompt", "completion", "label"))
    if "prompt" in columns:
        kind = _text_or_messages(dataset, where, "prompt")
        return Layout(PROMPT, kind == "messages", "column 'prompt'")
    if "messages" in columns and column_kind(dataset, "messages") == "messages":
        return Layout(PROMPT, True, "column 'messages' before its last assistant turn", transform="conversation")
    raise DatasetError(
        f"{where}: rows match no layout: columns found: {', '.join(dataset.column_names)}; accepted: prompt/chosen/"
        f"rejected or chosen/rejected (preference), prompt/completion/label (unpaired), prompt (prompt-only), "
        f"messages; map other names with --columns (e.g. --columns prompt=question,chosen=response_j)")


def _extra(columns: set, *core: str) -> tuple[str, ...]:
    return tuple(sorted(columns - set(core)))


def _preference(dataset, where: str, columns: set) -> Layout:
    answers = _text_or_messages(dataset, where, "chosen")
    if _text_or_messages(dataset, where, "rejected") != answers:
        raise DatasetError(f"{where}: row 1: 'chosen' and 'rejected' must both be strings or both message lists")
    extra = _extra(columns, "prompt", "chosen", "rejected")
    if answers == "messages":
        first = dataset.select_columns(["chosen"])[0]["chosen"] or [{}]
        whole = first[0].get("role") != "assistant"
        if whole:
            ignored = ("prompt", *extra) if "prompt" in columns else extra
            how = "the turns before the last assistant turn that both answers share" + (
                " (column 'prompt' ignored)" if "prompt" in columns else " (implicit prompt)")
            return Layout(PREFERENCE, True, how, ignored, transform="shared_turns")
        if "prompt" not in columns:
            raise DatasetError(f"{where}: 'chosen' and 'rejected' are assistant messages with no prompt column and "
                               f"no user turn to take one from")
        if _text_or_messages(dataset, where, "prompt") == "text":
            return Layout(PREFERENCE, True, "column 'prompt', a string made a user message", extra,
                          transform="prompt_to_message")
        return Layout(PREFERENCE, True, "column 'prompt'", extra)
    if "prompt" in columns:
        if _text_or_messages(dataset, where, "prompt") == "messages":
            return Layout(PREFERENCE, True, "column 'prompt', the string answers made assistant messages", extra,
                          transform="answers_to_messages")
        return Layout(PREFERENCE, False, "column 'prompt'", extra)
    return Layout(PREFERENCE, False, "the transcript up to the last assistant turn both answers share "
                                     "(implicit prompt)", extra, transform="transcript")


# --- normalising maps: each takes and returns a batch (dict of column lists) -----------------------------------


def shared_turns(chosen: list, rejected: list) -> tuple[list, list, list, str | None]:
    """(prompt, chosen, rejected, problem): the messages both conversations share, up to the last assistant turn
    of each, as the prompt; what follows as the answers."""
    end = min(len(chosen), len(rejected)) - 1  # each answer keeps at least its last message
    shared = 0
    while shared < end and chosen[shared] == rejected[shared]:
        shared += 1
    answer_c, answer_r = chosen[shared:], rejected[shared:]
    if not shared:
        return [], answer_c, answer_r, "the answers share no prompt turn"
    if answer_c[0].get("role") != "assistant" or answer_r[0].get("role") != "assistant":
        return chosen[:shared], answer_c, answer_r, "the answers differ before their assistant turn"
    return chosen[:shared], answer_c, answer_r, None


def split_transcript(chosen: str, rejected: str) -> tuple[str, str, str, str | None]:
    """(prompt, chosen, rejected, problem) of two plain-text transcripts: the prompt ends with the last assistant
    marker inside the text both share."""
    limit = 0
    for a, b in zip(chosen, rejected):
        if a != b:
            break
        limit += 1
    shared = chosen[:limit]
    cut = max((shared.rfind(m) + len(m) for m in ASSISTANT_TURNS if m in shared), default=-1)
    if cut <= 0:
        return "", chosen, rejected, "no assistant turn (e.g. '\\n\\nAssistant:') shared by 'chosen' and 'rejected'"
    return chosen[:cut], chosen[cut:], rejected[cut:], None


def transcript_messages(prompt: str) -> list[dict] | None:
    """An hh-style transcript prompt ("\\n\\nHuman: ...\\n\\nAssistant:") as chat messages, or None when it is
    not one."""
    parts = HH_TURNS.split(prompt)
    if len(parts) < 3 or parts[0].strip() or parts[-2] != "Assistant" or parts[-1].strip():
        return None
    turns = [{"role": "user" if who == "Human" else "assistant", "content": text.strip()}
             for who, text in zip(parts[1:-2:2], parts[2:-2:2])]
    return turns or None


def normalise(batch: dict, transform: str) -> dict:
    """One batch of rows in the normal form of their layout, with the PROBLEM column."""
    out = dict(batch)
    problems = [None] * len(next(iter(batch.values())))
    if transform in ("shared_turns", "transcript"):
        split = shared_turns if transform == "shared_turns" else split_transcript
        prompts, chosen, rejected = [], [], []
        for i, (c, r) in enumerate(zip(batch["chosen"], batch["rejected"])):
            if not c or not r:  # null or empty: the row check names it
                p, c2, r2 = ("" if transform == "transcript" else []), c, r
            else:
                p, c2, r2, problems[i] = split(c, r)
            prompts.append(p)
            chosen.append(c2)
            rejected.append(r2)
        out.update(prompt=prompts, chosen=chosen, rejected=rejected)
    elif transform == "prompt_to_message":
        out["prompt"] = [None if p is None else [{"role": "user", "content": p}] for p in batch["prompt"]]
    elif transform == "answers_to_messages":
        for name in ("chosen", "rejected"):
            out[name] = [None if a is None else [{"role": "assistant", "content": a}] for a in batch[name]]
    elif transform == "conversation":
        prompts = []
        for i, messages in enumerate(batch["messages"]):
            messages = messages or []
            last = max((j for j, m in enumerate(messages) if m.get("role") == "assistant"), default=len(messages))
            prompts.append(messages[:last])
            if not messages[:last]:
                problems[i] = "no turn before the last assistant turn"
        out["prompt"] = prompts
    elif transform == "transcript_to_messages":
        prompts = [transcript_messages(p) for p in batch["prompt"]]
        problems = [None if p else "the prompt is not a '\\n\\nHuman:' / '\\n\\nAssistant:' transcript"
                    for p in prompts]
        out["prompt"] = prompts
        for name in ("chosen", "rejected"):
            out[name] = [[{"role": "assistant", "content": a.strip()}] for a in batch[name]]
    out[PROBLEM] = problems
    return out


def interleave_unpaired(dataset):
    """Each preference pair as two unpaired examples in row order, its chosen (label True) then its rejected
    (False): KTO's desirable and undesirable examples from pairs."""
    def split(batch: dict) -> dict:
        out: dict[str, list] = {"prompt": [], "completion": [], "label": []}
        for prompt, chosen, rejected in zip(batch["prompt"], batch["chosen"], batch["rejected"]):
            out["prompt"] += [prompt, prompt]
            out["completion"] += [chosen, rejected]
            out["label"] += [True, False]
        return out

    core = dataset.select_columns(["prompt", "chosen", "rejected"])
    return core.map(split, batched=True, remove_columns=core.column_names, desc="pairs as unpaired examples")
