"""The offline methods on aligner's engine against the same methods through TRL's trainers, on the embedded default:
peak tensor memory and training speed for the same pairs, batch and settings.

    python -m benchmarks.offline_engine [--rounds 3] [--steps 100] [--output benchmarks/results/offline-engine]

Every run is `aligner.run(<method>, implementation=...)` in its own Python process with the method's defaults
(batch 16 pairs, max length 64, LoRA rank 16 on all linear layers, AdamW, linear decay) and `--steps` optimizer
steps: so the two sides share the base, the data, the tokenization into prompt + response, LoRA, the optimizer
and the schedule, and differ only in the loop. Speed: training seconds (model loading and evaluation excluded; TRL's
dataset preparation included, as it is part of training through TRL), median of `--rounds` alternating rounds with
tensor counting off. Memory: peak tensor memory (aligner's counter) of one more run of each, counting on. SimPO,
which has no reference and no TRL trainer, is the reference-free yardstick for DPO's memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys

from benchmarks.machine import describe, environment, in_fresh_process, publish

SIDES = [("dpo", "aligner"), ("dpo", "trl"), ("ipo", "aligner"), ("ipo", "trl"), ("kto", "aligner"), ("kto", "trl"),
         ("orpo", "aligner"), ("orpo", "trl"), ("simpo", "aligner")]
TIMED = [("dpo", "aligner"), ("dpo", "trl"), ("simpo", "aligner")]


def run_side(method: str, implementation: str, steps: int, count_memory: bool) -> dict:
    import aligner

    extra = {} if method == "simpo" else {"implementation": implementation}
    summary = aligner.run(method, max_steps=steps, eval_prompts=8, eval_max_new_tokens=8,
                          tensor_memory="on" if count_memory else "off", save_every=steps + 1,
                          output_dir=f"/tmp/offline-engine-{method}-{implementation}", overwrite=True, verbose=False,
                          **extra)
    return {"train_seconds": summary["train_seconds"], "peak_tensor_mb": summary.get("peak_tensor_mb"),
            "trained_tokens": summary.get("trained_tokens")}


def one(method: str, implementation: str, steps: int, count_memory: bool) -> dict:
    """One run in a fresh process, so no run inherits another's caches, threads or memory peak."""
    return in_fresh_process(f"benchmarks.offline_engine.run_side({method!r}, {implementation!r}, {steps}, "
                            f"{count_memory})", f"offline engine benchmark: {method} ({implementation})")


def name(side) -> str:
    return f"{side[0]} ({side[1]})" if side[0] != "simpo" else "simpo"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--output", default="benchmarks/results/offline-engine")
    args = parser.parse_args(argv)
    memory = {}
    for side in SIDES:
        memory[name(side)] = one(*side, args.steps, count_memory=True)
        print(f"{name(side)}: peak tensor memory {memory[name(side)]['peak_tensor_mb']:.1f} MB", flush=True)
    rounds = []
    for number in range(args.rounds):
        row = {}
        for side in (TIMED if number % 2 == 0 else TIMED[::-1]):
            row[name(side)] = one(*side, args.steps, count_memory=False)["train_seconds"]
            print(f"round {number + 1} {name(side)}: {row[name(side)]:.2f} s", flush=True)
        rounds.append(row)
    seconds = {name(s): statistics.median(r[name(s)] for r in rounds) for s in TIMED}
    env = environment()
    result = {"command": "python -m benchmarks.offline_engine " + " ".join(argv or sys.argv[1:]), **env,
              "steps": args.steps, "memory": memory, "rounds": rounds, "median_train_seconds": seconds,
              "dpo_over_simpo_peak_tensor_memory": memory["dpo (aligner)"]["peak_tensor_mb"]
              / memory["simpo"]["peak_tensor_mb"],
              "dpo_speedup_over_trl": seconds["dpo (trl)"] / seconds["dpo (aligner)"]}
    lines = ["# Offline methods: aligner's engine against TRL's trainers", "",
             f"Command: `{result['command']}`; {describe(env)}; {args.steps} steps of 16 pairs on the embedded "
             f"default.", "",
             "| method (implementation) | peak tensor memory (MB) | trained tokens |", "| --- | --- | --- |"]
    lines += [f"| {k} | {v['peak_tensor_mb']:.1f} | {v['trained_tokens'] or '-'} |" for k, v in memory.items()]
    lines += ["", "| round | " + " | ".join(f"{name(s)} train s" for s in TIMED) + " |",
              "| --- |" + " --- |" * len(TIMED)]
    lines += [f"| {i + 1} | " + " | ".join(f"{r[name(s)]:.2f}" for s in TIMED) + " |" for i, r in enumerate(rounds)]
    lines += ["| median | " + " | ".join(f"{seconds[name(s)]:.2f}" for s in TIMED) + " |", "",
              f"- DPO / SimPO peak tensor memory on aligner's engine: "
              f"{result['dpo_over_simpo_peak_tensor_memory']:.2f}x (target <= 1.2x)",
              f"- DPO through TRL / DPO on aligner's engine, training seconds: {result['dpo_speedup_over_trl']:.2f}x "
              f"(target >= 1.3x)"]
    publish(args.output, result, lines)


if __name__ == "__main__":
    main()
