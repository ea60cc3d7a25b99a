"""Builds the offline embedded default: a tiny Llama pre-trained on the review grammar, and a preference set.

Nothing here touches the network. The world is built deterministically from a seed on first use and cached, so
the repository ships code rather than weights. The model and the data are written as ordinary Hugging Face files
(`save_pretrained`, jsonl) and loaded back through the same code paths a user's `--model` / `--dataset` take.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from aligner.toy import grammar
from aligner.toy.gold import vader_compound
from aligner.toy.tokenizer import build_tokenizer

WORLD_VERSION = "v1"

CHECKSUMS = {
    0: {"model/model.safetensors": "c41ab28b032922899748d36787df9c61d3c3e276b9b2c141719e7e9d156d8279",
        "preferences.jsonl": "2b49b2141b0c36d2d0f54004122d6f9452bdd6f852d4f8b9352d950debc5164c",
        "eval_prompts.jsonl": "98fd7a7266b51770645b5b30319751c5dbca0998c3bcf50260c7948f2c34a33c"},
}
"""SHA-256 of the files a build writes, per seed: the reference build, made on an x86-64 AMD EPYC machine (torch 2.13
CPU) with one thread and with two alike. A world that differs was built by different arithmetic, and its runs
reproduce only figures made on the same build."""
OTHER_BUILDS = {
    0: [{"model/model.safetensors": "0ca4edd2c2d8240e52c441547286da3082bf3f1e4f19d7268f6eb36d39b63d4c",
         "preferences.jsonl": "edee39253c8306c2433a8935fae86c0385a6546ae1c112c55bb1cf69d3699ef9",
         "eval_prompts.jsonl": "98fd7a7266b51770645b5b30319751c5dbca0998c3bcf50260c7948f2c34a33c"}],
}
"""Builds of the same code on other processors (an x86-64 machine with AVX-512 and AMX, torch 2.13 CPU, one
thread): the weights' float arithmetic differs in the last bits, and with it every sampled pair after that. Known,
so a test can tell a change in the build's code (which matches none) from a change of machine."""
TOY_MODEL = "aligner-toy"
"""The value of `--model` / `--dataset` that selects the embedded default."""


@dataclass(frozen=True)
class ToyWorld:
    root: Path

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def train_path(self) -> Path:
        return self.root / "preferences.jsonl"

    @property
    def eval_prompts_path(self) -> Path:
        return self.root / "eval_prompts.jsonl"


def cache_dir() -> Path:
    """`ALIGNER_CACHE` if set, else `~/.cache/aligner`."""
    return Path(os.environ.get("ALIGNER_CACHE", Path.home() / ".cache" / "aligner"))


def model_config(vocab_size: int, pad_id: int, bos_id: int, eos_id: int) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=160,
        intermediate_size=448,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        tie_word_embeddings=False,
    )


def pretrain(model: LlamaForCausalLM, tokenizer, texts: list[str], seed: int, batch_size: int = 64,
             lr: float = 3e-3) -> list[float]:
    """One epoch of next-token prediction over `texts`; returns the loss of every step."""
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = len(texts) // batch_size
    warmup = max(1, steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(steps - warmup, 1))))
    )
    losses = []
    model.train()
    from tqdm.auto import tqdm

    for step in tqdm(range(steps), desc="toy world: pre-training", dynamic_ncols=True):
        batch = [t + " " + tokenizer.eos_token for t in texts[step * batch_size:(step + 1) * batch_size]]
        enc = tokenizer(batch, return_tensors="pt", padding=True)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses


def review_prefixes(texts: list[str]) -> list[str]:
    """Unique prompts: the first 2 to 4 words of each review, never the whole review."""
    rng = random.Random(0)
    prefixes = []
    for text in texts:
        words = text.split()
        k = rng.randint(2, 4)
        if k < len(words) - 1:
            prefixes.append(" ".join(words[:k]))
    return sorted(set(prefixes))


@torch.no_grad()
def sample_continuations(model, tokenizer, prompts: list[str], n: int, max_new_tokens: int, seed: int,
                         batch_size: int = 128) -> list[list[str]]:
    """`n` sampled continuations per prompt, each decoded with a leading space (TRL's prompt/completion style)."""
    from tqdm.auto import tqdm

    torch.manual_seed(seed)
    out: list[list[str]] = []
    for start in tqdm(range(0, len(prompts), batch_size), desc="toy world: sampling pairs", dynamic_ncols=True):
        chunk = prompts[start:start + batch_size]
        enc = tokenizer(chunk, return_tensors="pt", padding=True)
        generated = model.generate(
            **enc, do_sample=True, top_k=0, top_p=1.0, temperature=1.0, max_new_tokens=max_new_tokens,
            num_return_sequences=n, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        )
        texts = tokenizer.batch_decode(generated[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i in range(len(chunk)):
            out.append([" " + t.strip() for t in texts[i * n:(i + 1) * n]])
    return out


def preference_pairs(prompts: list[str], continuations: list[list[str]], min_margin: float) -> list[dict]:
    """DPO-paper style pairs: the best- and worst-scored continuation of each prompt, by gold score."""
    rows = []
    for prompt, candidates in zip(prompts, continuations):
        candidates = [c for c in candidates if c.strip()]  # an immediate EOS is no response to prefer
        if len(candidates) < 2:
            continue
        scores = vader_compound(candidates)
        best = max(range(len(candidates)), key=scores.__getitem__)
        worst = min(range(len(candidates)), key=scores.__getitem__)
        if scores[best] - scores[worst] >= min_margin and candidates[best] != candidates[worst]:
            rows.append({"prompt": prompt, "chosen": candidates[best], "rejected": candidates[worst],
                         "score_chosen": scores[best], "score_rejected": scores[worst]})
    return rows


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def build(root: Path, seed: int = 0, corpus_size: int = 24000, n_eval_prompts: int = 256,
          samples_per_prompt: int = 4, max_new_tokens: int = 20, prefix_corpus_size: int = 4000,
          log=print) -> dict:
    """Builds the whole world into `root` (which must not exist yet); returns build statistics. On one torch
    thread whatever the machine's load: on some processors (AVX-512) a matrix product's sums are split by thread
    count, and one and two threads build different bytes. The global torch random stream is restored afterwards,
    so a run that builds the world first draws what it would have drawn with the world already cached."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return _build(root, seed, corpus_size, n_eval_prompts, samples_per_prompt, max_new_tokens,
                          prefix_corpus_size, log)
    finally:
        torch.set_num_threads(before)


def _build(root: Path, seed: int, corpus_size: int, n_eval_prompts: int, samples_per_prompt: int,
           max_new_tokens: int, prefix_corpus_size: int, log) -> dict:
    started = time.perf_counter()
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(model_config(len(tokenizer), tokenizer.pad_token_id, tokenizer.bos_token_id,
                                          tokenizer.eos_token_id))
    texts = grammar.corpus(corpus_size, seed)
    log(f"aligner: building the toy world (once): pre-training a {model.num_parameters():,}-parameter Llama "
        f"on {len(texts):,} synthetic reviews")
    losses = pretrain(model, tokenizer, texts, seed)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(root / "model")
    tokenizer.save_pretrained(root / "model")

    prefixes = review_prefixes(grammar.corpus(prefix_corpus_size, seed + 1))
    random.Random(seed).shuffle(prefixes)
    eval_prompts, train_prompts = prefixes[:n_eval_prompts], prefixes[n_eval_prompts:]
    log(f"aligner: sampling {samples_per_prompt} continuations for {len(train_prompts)} prompts, labelling by VADER")
    continuations = sample_continuations(model, tokenizer, train_prompts, samples_per_prompt, max_new_tokens, seed)
    pairs = preference_pairs(train_prompts, continuations, min_margin=0.1)
    write_jsonl(root / "preferences.jsonl", pairs)
    write_jsonl(root / "eval_prompts.jsonl", [{"prompt": p} for p in eval_prompts])
    stats = {"version": WORLD_VERSION, "seed": seed, "parameters": model.num_parameters(),
             "pretrain_loss_first": losses[0], "pretrain_loss_last": sum(losses[-20:]) / 20,
             "train_prompts": len(train_prompts), "pairs": len(pairs), "eval_prompts": len(eval_prompts),
             "build_seconds": round(time.perf_counter() - started, 1)}
    stats["sha256"] = checksums(root)
    expected = CHECKSUMS.get(seed)
    if expected is not None and stats["sha256"] != expected:
        known = stats["sha256"] in OTHER_BUILDS.get(seed, [])
        log(f"aligner: warning: this machine built a toy world that differs from the reference build of seed {seed} "
            f"({', '.join(k for k in expected if stats['sha256'].get(k) != expected[k])}"
            f"{'; a known build of another processor kind' if known else ''}); runs on it reproduce only figures made on "
            f"the same build (each committed result names its machine)")
    (root / "world.json").write_text(json.dumps(stats, indent=2))
    return stats


def checksums(root: Path) -> dict[str, str]:
    import hashlib

    return {name: hashlib.sha256((root / name).read_bytes()).hexdigest()
            for name in ("model/model.safetensors", "preferences.jsonl", "eval_prompts.jsonl")}


def ensure(seed: int = 0, log=print) -> ToyWorld:
    """The cached world for `seed`, built first if missing. Built in a temp dir and renamed, so a killed build
    never leaves a half-written world behind; an flock beside it makes a second process that needs the world at
    the same time wait for the first one's build instead of building it too."""
    import fcntl

    from aligner.harness import storage

    root = cache_dir() / f"toy-{WORLD_VERSION}-seed{seed}"
    if (root / "world.json").exists():
        return ToyWorld(root)  # read only: a read-only cache that holds the world is fine
    storage.check_writable(root.parent, "ALIGNER_CACHE" if "ALIGNER_CACHE" in os.environ else "the toy world's cache")
    with open(root.parent / f".{root.name}.lock", "a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "another process"
            log(f"aligner: waiting for {holder} to finish building the toy world in {root}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "world.json").exists():
            lock.seek(0)
            lock.truncate()
            lock.write(f"process {os.getpid()}")
            lock.flush()
            tmp = Path(tempfile.mkdtemp(prefix=root.name + ".", dir=root.parent))
            try:
                build(tmp, seed=seed, log=log)
                if root.exists():
                    shutil.rmtree(root)
                os.replace(tmp, root)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    return ToyWorld(root)
