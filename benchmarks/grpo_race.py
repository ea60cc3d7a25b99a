"""GRPO throughput: aligner's `grpo` against TRL's `GRPOTrainer` on the embedded default, at equal settings.

    python -m benchmarks.grpo_race [--rounds 3] [--iterations 10] [--output benchmarks/results/grpo-race]
    python -m benchmarks.grpo_race --shape qwen2.5-0.5b [--rounds 3] [--iterations 3]

What the two sides share: the toy base and tokenizer, the training prompts, the reward (VADER's compound score of
the completion, aligner's `--reward gold`), LoRA (rank 16, alpha 32, all linear layers, no dropout), the rollout
shape (16 prompts x 4 completions of at most 20 tokens, temperature 1, no top-k/top-p), the update (minibatches of
16 completions, one pass, AdamW at 1e-3 with a constant rate, gradient clipping at 1, clip range 0.2), the k3 KL
in the loss at beta 0.05, group-scaled advantages and token-level loss aggregation (TRL's `dapo`), and the number
of optimizer steps (4 per iteration). Everything else is each side's default; neither compiles anything. aligner's
missing-EOS penalty is set to 0, since TRL has none.

`--shape` races at a real model's shape instead (random weights and a word-level tokenizer of its vocabulary, from
`benchmarks.perf.world`, loaded from a folder by both sides as a user's `--model` would be): 4 prompts of 32 tokens
x 4 completions of at most 16 tokens, one minibatch of all 16, float32 on the CPU; the reward is the share of a
completion's words with an even number (`even_words`), since VADER scores the random words 0.

Each side runs in its own Python process, the sides alternate, and the figure is trained completions per second of
training time (model loading and evaluation excluded): median of the rounds. Completion tokens per second are
reported beside it, since the two policies may sample completions of different lengths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

from benchmarks.machine import describe, environment, in_fresh_process, publish

from dataclasses import dataclass


@dataclass(frozen=True)
class Rollout:
    prompts: int
    generations: int
    length: int
    minibatch: int

    @property
    def steps_per_iteration(self) -> int:
        return self.prompts * self.generations // self.minibatch


TOY = Rollout(prompts=16, generations=4, length=20, minibatch=16)
SHAPED = Rollout(prompts=4, generations=4, length=16, minibatch=16)
SHAPED_PROMPT_TOKENS = 32
SHAPED_FOLDER = "/tmp/grpo-race-shape"


def even_words(prompts, completions, **kwargs) -> list[float]:
    """The share of a completion's words `w<n>` whose n is even: a reward with spread on random-word text."""
    scores = []
    for text in completions:
        words = [w for w in text.split() if w[1:].isdigit()]
        scores.append(sum(int(w[1:]) % 2 == 0 for w in words) / max(1, len(words)))
    return scores


def build_shape(shape: str) -> None:
    """The shaped model, its tokenizer and its prompts, written once where both sides load them."""
    from pathlib import Path

    from benchmarks.perf import world as perf_world

    folder = Path(SHAPED_FOLDER) / shape
    if (folder / "prompts.jsonl").exists():
        return
    tok = perf_world.tokenizer(shape, SHAPED_PROMPT_TOKENS + SHAPED.length)
    model = perf_world.model(shape, tok, "cpu", None)
    model.save_pretrained(folder / "model")
    tok.save_pretrained(folder / "model")
    prompts = perf_world.prompts(shape, 64, SHAPED_PROMPT_TOKENS)
    (folder / "prompts.jsonl").write_text("".join(json.dumps({"prompt": p}) + "\n" for p in prompts))


def run_aligner(iterations: int, seed: int, shape: str = "") -> dict:
    import aligner

    rollout = SHAPED if shape else TOY
    where = dict(model=f"{SHAPED_FOLDER}/{shape}/model", dataset=f"{SHAPED_FOLDER}/{shape}/prompts.jsonl",
                 reward=["benchmarks.grpo_race:even_words"], gold_reward="benchmarks.grpo_race:even_words",
                 max_length=SHAPED_PROMPT_TOKENS + SHAPED.length, eval_prompts=4) if shape else \
        dict(reward=["gold"], eval_prompts=8)
    summary = aligner.run("grpo", max_steps=iterations, prompts_per_step=rollout.prompts,
                          samples_per_prompt=rollout.generations, response_length=rollout.length,
                          batch_size=rollout.minibatch, epochs=1, learning_rate=1e-3, kl_coef=0.05, cliprange=0.2,
                          loss_aggregation="token", missing_eos_penalty=0.0, seed=seed, tensor_memory="off",
                          output_dir=f"/tmp/grpo-race-aligner-{seed}", overwrite=True, verbose=False, **where)
    rows = [json.loads(line) for line in open(f"/tmp/grpo-race-aligner-{seed}/metrics.jsonl") if line.strip()]
    phases = {phase: sum(row[f"time/{phase}"] for row in rows if f"time/{phase}" in row)
              for phase in ("rollout", "scoring", "update")}
    return {"train_seconds": summary["train_seconds"], "completions": iterations * rollout.prompts * rollout.generations,
            "completion_tokens": summary["generated_tokens"], "phases": phases}


def run_trl(iterations: int, seed: int, shape: str = "") -> dict:
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from aligner.toy import world
    from aligner.toy.gold import vader_compound

    rollout = SHAPED if shape else TOY
    if shape:
        model_dir = f"{SHAPED_FOLDER}/{shape}/model"
        prompts = [json.loads(line)["prompt"] for line in open(f"{SHAPED_FOLDER}/{shape}/prompts.jsonl")]
        reward = even_words
    else:
        toy = world.ensure()
        model_dir = toy.model_dir
        prompts = sorted({json.loads(line)["prompt"] for line in toy.train_path.read_text().splitlines()})

        def reward(prompts, completions, **kwargs):
            return vader_compound(list(completions))

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    steps = rollout.steps_per_iteration
    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="grpo-race-trl-"), per_device_train_batch_size=rollout.minibatch,
        steps_per_generation=steps, num_generations=rollout.generations, max_completion_length=rollout.length,
        temperature=1.0, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
        beta=0.05, epsilon=0.2, loss_type="dapo", scale_rewards="group", num_iterations=1,
        max_steps=iterations * steps, seed=seed, use_cpu=True, bf16=False, report_to=[],
        save_strategy="no", logging_steps=steps, disable_tqdm=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), peft_config=lora)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history
               if "completions/mean_length" in row]  # one row per iteration (logging_steps)
    completions = iterations * rollout.prompts * rollout.generations
    return {"train_seconds": seconds, "completions": completions,
            "completion_tokens": round(statistics.mean(lengths) * completions)}


def one(side: str, iterations: int, seed: int, shape: str = "") -> dict:
    """Runs one side in a fresh process, so neither inherits the other's caches or threads."""
    result = in_fresh_process(f"benchmarks.grpo_race.run_{side}({iterations}, {seed}, {shape!r})",
                              f"grpo race: the {side} side")
    result["completions_per_second"] = result["completions"] / result["train_seconds"]
    result["tokens_per_second"] = result["completion_tokens"] / result["train_seconds"]
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10, help="aligner iterations (TRL: 4 steps each)")
    parser.add_argument("--shape", default="", help="race at this benchmarks.perf.world shape instead of the toy")
    parser.add_argument("--output", default=None,
                        help="default: benchmarks/results/grpo-race, or grpo-race-<shape> with --shape")
    parser.add_argument("--report", metavar="JSON", help="write the report of a finished race's JSON again, and stop")
    args = parser.parse_args(argv)
    if args.report:
        result = json.loads(open(args.report).read())
        publish(args.report.removesuffix(".json"), result, report(result))
        return
    args.output = args.output or "benchmarks/results/grpo-race" + (f"-{args.shape}" if args.shape else "")
    if args.shape:
        build_shape(args.shape)
    rounds = []
    for number in range(args.rounds):
        order = ("aligner", "trl") if number % 2 == 0 else ("trl", "aligner")
        row = {}
        for side in order:
            row[side] = one(side, args.iterations, seed=0, shape=args.shape)
            print(f"round {number + 1} {side}: {row[side]['completions_per_second']:.1f} completions/s, "
                  f"{row[side]['tokens_per_second']:.0f} completion tokens/s ({row[side]['train_seconds']:.1f} s)",
                  flush=True)
        rounds.append(row)
    median = {side: statistics.median(r[side]["completions_per_second"] for r in rounds) for side in ("aligner", "trl")}
    tokens = {side: statistics.median(r[side]["tokens_per_second"] for r in rounds) for side in ("aligner", "trl")}
    env = environment()
    result = {"command": "python -m benchmarks.grpo_race " + " ".join(argv or sys.argv[1:]), **env,
              "shape": args.shape, "iterations": args.iterations, "rounds": rounds,
              "median_completions_per_second": median, "median_tokens_per_second": tokens,
              "aligner_over_trl": median["aligner"] / median["trl"]}
    publish(args.output, result, report(result))


def rate(value: float) -> str:
    """Three significant figures or more: a 0.5B-shaped round trains about one completion per second."""
    return f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def report(result: dict) -> list[str]:
    """The report's lines from a result (`--report FILE.json` writes them again from a committed one)."""
    rounds, median, tokens = result["rounds"], result["median_completions_per_second"], result["median_tokens_per_second"]
    shape = result.get("shape", "")
    rollout = SHAPED if shape else TOY
    world = (f"the {shape} shape (random weights, prompts of {SHAPED_PROMPT_TOKENS} tokens)" if shape
             else "the embedded default")
    lines = ["# GRPO throughput: aligner against TRL's GRPOTrainer", "",
             f"Command: `{result['command']}`; {describe(result)}; {world}: {rollout.prompts} prompts x "
             f"{rollout.generations} completions of at most {rollout.length} tokens per iteration, "
             f"{result.get('iterations', '?')} iterations per round.", "",
             "| round | aligner completions/s | TRL completions/s | aligner tokens/s | TRL tokens/s |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {rate(r['aligner']['completions_per_second'])} | {rate(r['trl']['completions_per_second'])} | "
              f"{r['aligner']['tokens_per_second']:.0f} | {r['trl']['tokens_per_second']:.0f} |"
              for i, r in enumerate(rounds)]
    lines += [f"| median | {rate(median['aligner'])} | {rate(median['trl'])} | {tokens['aligner']:.0f} | "
              f"{tokens['trl']:.0f} |", "",
              f"aligner / TRL, completions per second of training: {result['aligner_over_trl']:.2f}x "
              f"(completion tokens per second: {tokens['aligner'] / tokens['trl']:.2f}x)", "",
              "Where aligner's training time goes (seconds per round: sampling, which also keeps the rollout "
              "policy's log-probs in float32; scoring = the reference's log-probs (and the policy's, where they are "
              "recomputed) and the reward; the update; the rest is setup, the final checkpoint and the loop's own "
              "bookkeeping):", "",
              "| round | sampling | scoring | update | train time |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {r['aligner']['phases']['rollout']:.1f} | {r['aligner']['phases']['scoring']:.1f} | "
              f"{r['aligner']['phases']['update']:.1f} | {r['aligner']['train_seconds']:.1f} |"
              for i, r in enumerate(rounds)]
    return lines




if __name__ == "__main__":
    main()
