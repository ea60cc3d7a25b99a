"""GRPO throughput: aligner's `grpo` against TRL's `GRPOTrainer` on the embedded default, at equal settings.

    python -m benchmarks.grpo_race [--rounds 3] [--iterations 10] [--output benchmarks/results/grpo-race]

What the two sides share: the toy base and tokenizer, the training prompts, the reward (VADER's compound score of
the completion, aligner's `--reward gold`), LoRA (rank 16, alpha 32, all linear layers, no dropout), the rollout
shape (16 prompts x 4 completions of at most 20 tokens, temperature 1, no top-k/top-p), the update (minibatches of
16 completions, one pass, AdamW at 1e-3 with a constant rate, gradient clipping at 1, clip range 0.2), the k3 KL
in the loss at beta 0.05, group-scaled advantages and token-level loss aggregation (TRL's `dapo`), and the number
of optimizer steps (4 per iteration). Everything else is each side's default; neither compiles anything. aligner's
missing-EOS penalty is set to 0, since TRL has none.

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

PROMPTS, GENERATIONS, LENGTH, MINIBATCH = 16, 4, 20, 16
STEPS_PER_ITERATION = PROMPTS * GENERATIONS // MINIBATCH


def run_aligner(iterations: int, seed: int) -> dict:
    import aligner

    summary = aligner.run("grpo", reward=["gold"], max_steps=iterations, prompts_per_step=PROMPTS,
                          samples_per_prompt=GENERATIONS, response_length=LENGTH, batch_size=MINIBATCH, epochs=1,
                          learning_rate=1e-3, kl_coef=0.05, cliprange=0.2, loss_aggregation="token",
                          missing_eos_penalty=0.0, seed=seed, eval_prompts=8, tensor_memory="off",
                          output_dir=f"/tmp/grpo-race-aligner-{seed}", overwrite=True, verbose=False)
    rows = [json.loads(line) for line in open(f"/tmp/grpo-race-aligner-{seed}/metrics.jsonl") if line.strip()]
    phases = {phase: sum(row[f"time/{phase}"] for row in rows if f"time/{phase}" in row)
              for phase in ("rollout", "scoring", "update")}
    return {"train_seconds": summary["train_seconds"], "completions": iterations * PROMPTS * GENERATIONS,
            "completion_tokens": summary["generated_tokens"], "phases": phases}


def run_trl(iterations: int, seed: int) -> dict:
    import tempfile

    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from aligner.toy import world
    from aligner.toy.gold import vader_compound

    toy = world.ensure()
    tokenizer = AutoTokenizer.from_pretrained(toy.model_dir)
    model = AutoModelForCausalLM.from_pretrained(toy.model_dir)
    prompts = sorted({json.loads(line)["prompt"] for line in toy.train_path.read_text().splitlines()})

    def vader(prompts, completions, **kwargs):
        return vader_compound(list(completions))

    args = GRPOConfig(
        output_dir=tempfile.mkdtemp(prefix="grpo-race-trl-"), per_device_train_batch_size=MINIBATCH,
        steps_per_generation=STEPS_PER_ITERATION, num_generations=GENERATIONS, max_completion_length=LENGTH,
        temperature=1.0, learning_rate=1e-3, lr_scheduler_type="constant", warmup_steps=0, max_grad_norm=1.0,
        beta=0.05, epsilon=0.2, loss_type="dapo", scale_rewards="group", num_iterations=1,
        max_steps=iterations * STEPS_PER_ITERATION, seed=seed, use_cpu=True, bf16=False, report_to=[],
        save_strategy="no", logging_steps=STEPS_PER_ITERATION, disable_tqdm=True)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=vader, args=args, processing_class=tokenizer,
                          train_dataset=Dataset.from_dict({"prompt": prompts}), peft_config=lora)
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    lengths = [row["completions/mean_length"] for row in trainer.state.log_history
               if "completions/mean_length" in row]  # one row per iteration (logging_steps)
    completions = iterations * PROMPTS * GENERATIONS
    return {"train_seconds": seconds, "completions": completions,
            "completion_tokens": round(statistics.mean(lengths) * completions)}


def one(side: str, iterations: int, seed: int) -> dict:
    """Runs one side in a fresh process, so neither inherits the other's caches or threads."""
    result = in_fresh_process(f"benchmarks.grpo_race.run_{side}({iterations}, {seed})",
                              f"grpo race: the {side} side")
    result["completions_per_second"] = result["completions"] / result["train_seconds"]
    result["tokens_per_second"] = result["completion_tokens"] / result["train_seconds"]
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10, help="aligner iterations (TRL: 4 steps each)")
    parser.add_argument("--output", default="benchmarks/results/grpo-race")
    args = parser.parse_args(argv)
    rounds = []
    for number in range(args.rounds):
        order = ("aligner", "trl") if number % 2 == 0 else ("trl", "aligner")
        row = {}
        for side in order:
            row[side] = one(side, args.iterations, seed=0)
            print(f"round {number + 1} {side}: {row[side]['completions_per_second']:.1f} completions/s, "
                  f"{row[side]['tokens_per_second']:.0f} completion tokens/s ({row[side]['train_seconds']:.1f} s)",
                  flush=True)
        rounds.append(row)
    median = {side: statistics.median(r[side]["completions_per_second"] for r in rounds) for side in ("aligner", "trl")}
    tokens = {side: statistics.median(r[side]["tokens_per_second"] for r in rounds) for side in ("aligner", "trl")}
    env = environment()
    result = {"command": "python -m benchmarks.grpo_race " + " ".join(argv or sys.argv[1:]), **env,
              "rounds": rounds, "median_completions_per_second": median, "median_tokens_per_second": tokens,
              "aligner_over_trl": median["aligner"] / median["trl"]}
    lines = ["# GRPO throughput: aligner against TRL's GRPOTrainer", "",
             f"Command: `{result['command']}`; {describe(env)}.", "",
             "| round | aligner completions/s | TRL completions/s | aligner tokens/s | TRL tokens/s |",
             "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {r['aligner']['completions_per_second']:.1f} | {r['trl']['completions_per_second']:.1f} | "
              f"{r['aligner']['tokens_per_second']:.0f} | {r['trl']['tokens_per_second']:.0f} |"
              for i, r in enumerate(rounds)]
    lines += [f"| median | {median['aligner']:.1f} | {median['trl']:.1f} | {tokens['aligner']:.0f} | "
              f"{tokens['trl']:.0f} |", "",
              f"aligner / TRL, completions per second of training: {result['aligner_over_trl']:.2f}x "
              f"(completion tokens per second: {tokens['aligner'] / tokens['trl']:.2f}x)", "",
              "Where aligner's training time goes (seconds per round: sampling; scoring = the policy's and the "
              "reference's log-probs and the reward; the update; the rest is the loop's own bookkeeping):", "",
              "| round | sampling | scoring | update | train time |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {i + 1} | {r['aligner']['phases']['rollout']:.1f} | {r['aligner']['phases']['scoring']:.1f} | "
              f"{r['aligner']['phases']['update']:.1f} | {r['aligner']['train_seconds']:.1f} |"
              for i, r in enumerate(rounds)]
    publish(args.output, result, lines)


if __name__ == "__main__":
    main()
