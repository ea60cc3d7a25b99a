"""A word-level tokenizer for the toy grammar.

Word-level keeps the toy model tiny and makes every token a readable word, so decoded samples are exactly the text
VADER scores. Pad, BOS and EOS are distinct tokens: PPO and DPO both need to tell padding from a real end.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

from aligner.toy.grammar import vocabulary

PAD, UNK, BOS, EOS = "<pad>", "<unk>", "<bos>", "<eos>"


def build_tokenizer(words: list[str] | None = None, model_max_length: int = 128) -> PreTrainedTokenizerFast:
    """The toy grammar's tokenizer; with `words`, the same kind over another vocabulary (the performance suite
    makes one as large as a real model's)."""
    words = [PAD, UNK, BOS, EOS, *(vocabulary() if words is None else words)]
    core = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, words.index(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        unk_token=UNK,
        bos_token=BOS,
        eos_token=EOS,
        padding_side="left",
        model_max_length=model_max_length,
    )
