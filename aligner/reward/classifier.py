"""A trained reward model from the hub or a folder (`AutoModelForSequenceClassification` with one label, such as
Skywork-Reward or OpenAssistant's DeBERTa reward model) as a reward or a judge.

It is the one model besides the base that aligner loads: it has its own weights and tokenizer, so it cannot be an
adapter on the base. It reads the prompt and response through its own chat template when it has one (the format
it was trained on), else their plain concatenation; it scores in batches, without gradients, on the run's device.
Its weights are left out of the run's tensor-memory count and reported on their own line (`memory_mb`).
"""

from __future__ import annotations

import torch

from aligner.harness import memory


def _text(prompt, completion) -> tuple[list[dict] | None, str]:
    """(messages, plain text) of one row."""
    answer = completion[-1]["content"] if isinstance(completion, list) else completion
    if isinstance(prompt, list):
        return prompt + [{"role": "assistant", "content": answer}], "\n".join(m["content"] for m in prompt) + answer
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer.strip()}], prompt + answer


class SequenceClassifierReward:
    def __init__(self, spec: str, device=None, dtype=None, trust_remote_code: bool = False, batch_size: int = 16):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.device = torch.device(device or "cpu")
        self.batch_size = batch_size
        with memory.paused():
            self.tokenizer = AutoTokenizer.from_pretrained(spec, trust_remote_code=trust_remote_code)
            self.model = AutoModelForSequenceClassification.from_pretrained(
                spec, trust_remote_code=trust_remote_code, dtype=dtype or torch.float32).to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        for p in self.model.parameters():
            p.requires_grad_(False)
        memory.exclude(self.model)
        self.templated = bool(getattr(self.tokenizer, "chat_template", None))
        limit = getattr(self.tokenizer, "model_max_length", None)
        self.max_length = limit if isinstance(limit, int) and limit < 100_000 else 4096
        self.memory_mb = sum(t.numel() * t.element_size()
                             for t in [*self.model.parameters(), *self.model.buffers()]) / 2**20

    def texts(self, prompts: list, completions: list) -> list[str]:
        out = []
        for prompt, completion in zip(prompts, completions):
            messages, plain = _text(prompt, completion)
            out.append(self.tokenizer.apply_chat_template(messages, tokenize=False) if self.templated else plain)
        return out

    @torch.no_grad()
    def score(self, prompts: list, completions: list, **columns) -> list[float]:
        texts = self.texts(prompts, completions)
        scores: list[float] = []
        with memory.paused():
            for start in range(0, len(texts), self.batch_size):
                # a chat template writes its own special tokens (BOS included); plain text gets the tokenizer's
                enc = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length,
                                     add_special_tokens=not self.templated).to(self.device)
                logits = self.model(**enc).logits
                scores += logits[:, 0].float().cpu().tolist()
        return scores
