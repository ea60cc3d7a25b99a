"""The embedded default's prompt-only task: a verifiable reward that reads a column.

Each prompt is one review clause followed by "overall , it was"; its `answer` column says the verdict the clause
supports, "good" or "bad" (the sign of VADER's compound score; neutral clauses are left out). The registered reward
`answer-match` gives 1 when a response's first word is the row's answer, so `aligner run grpo --dataset
aligner-toy-verdicts --reward answer-match --gold-reward answer-match` trains and judges against the answers, the
way a math set's final answers are checked. Built from the grammar alone (no model), so it leaves the toy world's
version and checksums untouched; written once as a dataset folder (`train.jsonl`, `test.jsonl`), which loads
through the same code as a user's folder.
"""

from __future__ import annotations

import json
import os
import random
import tempfile
from pathlib import Path

from aligner.toy import grammar

VERSION = "v1"
TRAIN_ROWS, TEST_ROWS = 2000, 256


def rows(n: int, seed: int) -> list[dict]:
    """`n` prompts with their verdicts, identical for the same seed."""
    from aligner.toy.gold import vader_compound

    rng = random.Random(seed)
    out: list[dict] = []
    while len(out) < n:
        clauses = [grammar.clause(rng) for _ in range(n)]
        for text, score in zip(clauses, vader_compound(clauses)):
            if abs(score) >= 0.05 and len(out) < n:
                out.append({"prompt": f"{text} . overall , it was", "answer": "good" if score > 0 else "bad"})
    return out


def answer_match(prompts: list, completions: list, answer: list | None = None, **columns) -> list[float | None]:
    """1.0 when a completion's first word equals the row's `answer`, 0.0 when not, None for a row without one.
    Called as TRL calls its reward functions: keyword lists, the dataset's other columns among them."""
    if answer is None:
        raise ValueError("answer-match reads an 'answer' column, and the data has none")
    scores: list[float | None] = []
    for completion, expected in zip(completions, answer):
        text = completion[-1]["content"] if isinstance(completion, list) else completion
        words = text.split()
        scores.append(None if expected is None else float(bool(words) and words[0] == str(expected).strip()))
    return scores


def ensure() -> Path:
    """The task's dataset folder in aligner's cache, written once (to a temporary folder, then renamed)."""
    from aligner.toy.world import cache_dir

    root = cache_dir() / f"toy-verdicts-{VERSION}"
    if (root / "test.jsonl").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
    for name, n, seed in (("train", TRAIN_ROWS, 1), ("test", TEST_ROWS, 2)):
        (tmp / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(n, seed)))
    try:
        os.replace(tmp, root)
    except OSError:  # another process wrote it first
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return root
