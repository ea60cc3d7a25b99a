"""A seeded grammar of short movie-review-like texts.

The grammar is rich enough that sentiment is a real task for a language model: the same adjective flips meaning
under negation ("not bad"), intensifiers scale it ("very good"), and a contrast ("but") lets the second clause
dominate. VADER models all three, so the gold scorer reacts to exactly the structure the grammar produces.
"""

from __future__ import annotations

import random

POSITIVE = [
    "good", "great", "excellent", "wonderful", "amazing", "brilliant", "beautiful", "fun", "enjoyable", "funny",
    "charming", "delightful", "lovely", "superb", "fantastic", "perfect", "nice", "clever", "sweet", "fresh",
    "impressive", "touching", "pleasant", "solid", "strong", "smart", "gorgeous", "exciting", "stunning",
    "hilarious", "inspiring", "memorable", "powerful", "thrilling", "warm", "awesome", "entertaining", "terrific",
]
NEGATIVE = [
    "bad", "terrible", "awful", "boring", "dull", "horrible", "stupid", "weak", "poor", "mediocre", "lame",
    "ugly", "annoying", "painful", "ridiculous", "pathetic", "dreadful", "disappointing", "tedious", "messy",
    "bland", "silly", "pointless", "sad", "worst", "forgettable", "clumsy", "lazy", "tiresome", "confusing",
    "cheap", "depressing", "predictable", "unfunny", "dumb", "awkward", "irritating", "hopeless",
]
NEUTRAL = [
    "long", "short", "slow", "quiet", "familiar", "strange", "simple", "old", "new", "dark", "loud", "odd",
    "usual", "modern", "classic", "big", "small", "late", "early", "french", "british", "american", "animated",
    "musical", "historical", "silent", "black", "white", "young", "final", "second", "first", "different",
    "serious", "light", "rare", "unusual", "typical",
]
NOUNS = [
    "movie", "film", "plot", "story", "acting", "cast", "director", "script", "soundtrack", "ending",
    "dialogue", "cinematography", "pacing", "lead", "villain", "hero", "camera", "music", "score", "editing",
    "sequel", "scene", "performance", "screenplay", "premise", "finale", "opening", "characters", "effects",
    "costumes", "writing", "humor", "romance", "action", "twist", "setting", "budget", "runtime", "trailer",
    "animation", "actor", "actress", "narrator", "production", "comedy", "drama", "thriller", "documentary",
]
INTENSIFIERS = ["very", "really", "extremely", "quite", "so", "truly", "incredibly", "pretty", "rather", "totally"]
NEGATIONS = ["not", "never", "hardly"]
SUBJECT_OPENERS = ["i thought", "i felt", "we agreed", "my friends said", "honestly ,", "overall ,", "in short ,"]
VERBS = ["was", "is", "seemed", "felt", "looked"]
CLOSERS = [
    "i would watch it again", "i left early", "my kids liked it", "the theater was full", "i saw it twice",
    "it runs two hours", "we saw it on sunday", "the popcorn was cold", "it opened last week",
    "i would recommend it", "i want my money back", "it made me think", "i fell asleep",
]


def _adjective(rng: random.Random) -> tuple[str, int]:
    """An adjective and its polarity (+1, -1 or 0)."""
    roll = rng.random()
    if roll < 0.4:
        return rng.choice(POSITIVE), 1
    if roll < 0.8:
        return rng.choice(NEGATIVE), -1
    return rng.choice(NEUTRAL), 0


def _adjective_phrase(rng: random.Random) -> str:
    adjective, _ = _adjective(rng)
    words = []
    if rng.random() < 0.2:
        words.append(rng.choice(NEGATIONS))
    if rng.random() < 0.35:
        words.append(rng.choice(INTENSIFIERS))
    words.append(adjective)
    return " ".join(words)


def clause(rng: random.Random) -> str:
    """One clause of a review: a noun with an adjective phrase, in one of four forms."""
    noun = rng.choice(NOUNS)
    form = rng.random()
    if form < 0.5:
        return f"the {noun} {rng.choice(VERBS)} {_adjective_phrase(rng)}"
    if form < 0.7:
        return f"it is a {_adjective_phrase(rng)} {noun}"
    if form < 0.85:
        return f"{rng.choice(SUBJECT_OPENERS)} the {noun} {rng.choice(VERBS)} {_adjective_phrase(rng)}"
    return f"a {_adjective_phrase(rng)} {noun} and a {_adjective_phrase(rng)} {rng.choice(NOUNS)}"


def review(rng: random.Random) -> str:
    """One review: one to three clauses, sometimes joined by a contrast, sometimes with a neutral closer."""
    sentences = []
    for _ in range(rng.randint(1, 2)):
        text = clause(rng)
        if rng.random() < 0.3:
            text = f"{text} but {clause(rng)}"
        sentences.append(text)
    if rng.random() < 0.25:
        sentences.append(rng.choice(CLOSERS))
    return " . ".join(sentences) + " ."


def corpus(n: int, seed: int) -> list[str]:
    """`n` reviews, identical for the same seed."""
    rng = random.Random(seed)
    return [review(rng) for _ in range(n)]


def vocabulary() -> list[str]:
    """Every word the grammar can produce, sorted, so the tokenizer's ids depend on the grammar alone."""
    words: set[str] = {"the", "it", "is", "a", "and", "but", "."}
    for group in (POSITIVE, NEGATIVE, NEUTRAL, NOUNS, INTENSIFIERS, NEGATIONS, VERBS):
        words.update(group)
    for phrase in SUBJECT_OPENERS + CLOSERS:
        words.update(phrase.split())
    return sorted(words)
