"""Speed and memory of aligner's algorithms at real model shapes (random weights: speed and memory do not depend on
their values), against the layout users would otherwise run: four full copies of the model.

    python -m benchmarks.perf --shape qwen2.5-0.5b             # GPU, bf16, batch 64, 128 + 128 tokens
    python -m benchmarks.perf --shape tiny --batch 8 --prompt-length 32 --response-length 32   # CPU check

Each layout (benchmarks.perf.layouts) runs in its own process, so one layout's memory peak cannot leak into
another's, and a layout that fails (out of memory, say) is recorded with its error while the others still run.
Reported per layout: peak memory (GPU: max_memory_allocated; CPU: peak RSS), seconds per step split into rollout /
scoring / update, generation tokens per second and their share of the memory-bandwidth roofline, and update MFU:
LoRA training FLOPs (benchmarks.perf.flops) over time, against the matmul rate measured on the same device in the
same dtype in the same run.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.perf.layouts import LAYOUTS, placement, sync

REPO = Path(__file__).resolve().parents[2]
"""`benchmarks` is imported from the repository root; each layout's process starts there."""
from benchmarks.perf.world import SHAPES


def timed(device, fn) -> float:
    sync(device)
    started = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - started


def matmul_rate(device, dtype, n: int) -> float:
    """Measured dense matmul FLOP/s in `dtype` on `device` (the MFU denominator)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    return 10 * 2 * n ** 3 / timed(device, lambda: [a @ b for _ in range(10)])


def bandwidth(device, n_bytes: int) -> float:
    """Measured copy bandwidth in bytes/s (each copy reads and writes `n_bytes`)."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 10 * 2 * n_bytes / timed(device, lambda: [dst.copy_(src) for _ in range(10)])


def measure_device() -> dict:
    where = placement()
    cuda = where.device.type == "cuda"
    return {"matmul_flops_per_second": matmul_rate(where.device, where.dtype, 8192 if cuda else 1024),
            "bandwidth_bytes_per_second": bandwidth(where.device, (2 << 30) if cuda else (256 << 20))}


def _cell(r: dict, key: str, fmt: str) -> str:
    return format(r[key], fmt) if key in r else "-"


def report(results: list[dict], rates: dict, args) -> str:
    done = [r for r in results if "error" not in r]
    where = f"{done[0]['device']} {done[0]['dtype']}" if done else "no layout finished"
    timing = (f"times are medians over steps 2-{args.steps}" if args.steps > 2
              else "times are those of step 2 (the first is warm-up)")
    routines = ("the full-vocabulary ones aligner used before (benchmarks.perf.full_vocab)" if args.logprobs == "full"
                else "chunked, response positions only, heads without the LM head")
    lines = [f"# aligner perf: {args.shape}, batch {args.batch}, prompt {args.prompt_length} + response "
             f"{args.response_length} tokens, {where}", "",
             f"Measured: matmul {rates['matmul_flops_per_second'] / 1e12:.2f} TFLOP/s, copy bandwidth "
             f"{rates['bandwidth_bytes_per_second'] / 1e9:.1f} GB/s; PPO rollouts with a {args.generation_cache} "
             f"KV cache; {timing}.", "",
             f"Log-prob routines: {args.logprobs}, {routines}. Peak tensor memory counts live tensor storages "
             "(CUDA: max_memory_allocated; CPU: aligner's counter); peak process memory is the CPU process's resident "
             "set (on CUDA, the allocator's figure).", "",
             "| layout | peak tensor memory (MB) | peak process memory (MB) | rollout (s) | scoring (s) | update (s) "
             "| gen tokens/s | roofline | update MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['layout']} | failed: {r['error']} | | | | | | | |")
            continue
        mfu = r["update_flops"] / r["update_seconds"] / rates["matmul_flops_per_second"]
        roofline = (f"{r['decode_bytes'] / rates['bandwidth_bytes_per_second'] / r['rollout_seconds']:.0%}"
                    if "rollout_seconds" in r else "-")
        cells = [_cell(r, "peak_tensor_mb", ".0f"), _cell(r, "peak_memory_mb", ".0f"), _cell(r, "rollout_seconds", ".3f"),
                 _cell(r, "scoring_seconds", ".3f"), _cell(r, "update_seconds", ".3f"),
                 _cell(r, "generation_tokens_per_second", ",.0f"), roofline, f"{mfu:.1%}"]
        lines.append(f"| {r['layout']} | " + " | ".join(cells) + " |")
    lines += ["", *ratio_lines({r["layout"]: r["peak_tensor_mb"] for r in done if "peak_tensor_mb" in r}),
              *speedup_lines({r["layout"]: r["update_seconds"] for r in done if "update_seconds" in r})]
    return "\n".join(lines) + "\n"


TARGETS = {("dpo", "simpo"): 1.2, ("ppo-shared", "dpo"): 1.5, ("ppo-separate", "dpo"): 1.7,
           ("ppo-shared", "ppo-copies"): 0.5, ("ppo-separate", "ppo-copies"): 0.5}
"""Peak tensor memory ratios and their targets: DPO's reference pass (no gradients) must add little to a
reference-free method's step, one base for every role must cost little more than DPO, and at most half of four
full copies."""
SPEEDUPS = {("dpo", "dpo-trl"): 1.3}
"""Update-time ratios (the second's seconds per step over the first's) and their targets: aligner's DPO against
the same DPO through TRL's trainer."""


def ratio_lines(peak: dict) -> list[str]:
    return target_lines(peak, TARGETS, "peak tensor memory", lambda layout, against: peak[layout] / peak[against],
                        at_most=True)


def speedup_lines(seconds: dict) -> list[str]:
    return target_lines(seconds, SPEEDUPS, "speed-up (update seconds per step)",
                        lambda layout, against: seconds[against] / seconds[layout], at_most=False)


def target_lines(values: dict, targets: dict, what: str, ratio_of, at_most: bool) -> list[str]:
    out = []
    for (layout, against), target in targets.items():
        if layout in values and against in values:
            ratio = ratio_of(layout, against)
            met = ratio <= target if at_most else ratio >= target
            out.append(f"- {layout} / {against} {what}: {ratio:.2f}x (target {'<=' if at_most else '>='} "
                       f"{target}x: {'met' if met else 'missed'})")
    return out


def run_one(layout: str, args) -> dict:
    """One layout in a fresh process; its last stdout line is its result."""
    command = [sys.executable, "-m", "benchmarks.perf", "--only", layout, "--shape", args.shape, "--batch",
               str(args.batch), "--prompt-length", str(args.prompt_length), "--response-length",
               str(args.response_length), "--steps", str(args.steps), "--generation-cache", args.generation_cache,
               "--logprobs", args.logprobs]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["exit code %d" % done.returncode])[-1]
        if done.returncode < 0:  # a signal leaves no traceback: say which, rather than quote a stray warning
            last = f"killed by signal {-done.returncode}" + (
                " (on Linux, most likely the out-of-memory killer)" if done.returncode == -9 else "")
        print(f"perf: layout {layout} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return {"layout": layout, "error": last[:300]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse(argv):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--batch", type=int, default=64, help="DPO pairs per step; PPO prompts per rollout (one "
                                                              "minibatch of all of them per update).")
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--response-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="Steps per layout; the first is warm-up.")
    parser.add_argument("--generation-cache", choices=("static", "dynamic"), default="static",
                        help="KV cache of PPO's rollouts (its --generation-cache setting).")
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=LAYOUTS)
    parser.add_argument("--logprobs", choices=("lean", "full"), default="lean",
                        help="full: the full-vocabulary log-prob routines aligner used before (benchmarks.perf."
                             "full_vocab), to measure what the lean ones save.")
    parser.add_argument("--output-dir", default=None, help="Default: bench-runs/perf-<shape>.")
    parser.add_argument("--rewrite-report", action="store_true",
                        help="Write perf.md again from the perf.json in --output-dir, running nothing.")
    parser.add_argument("--only", choices=LAYOUTS, help=argparse.SUPPRESS)  # internal: one layout, this process
    args = parser.parse_args(argv)
    if args.steps < 2:
        parser.error(f"--steps must be at least 2 (one warm-up step, and a median over the others), got {args.steps}")
    return args


def rewrite_report(out: Path) -> int:
    """perf.md again from the perf.json in `out` (after a change to the report's wording)."""
    from aligner.harness.rundir import write_atomic

    measured = json.loads((out / "perf.json").read_text())
    args = argparse.Namespace(**measured["args"])
    text = report(measured["results"], measured["rates"], args) + f"\nCommand: `{measured['command']}`\n"
    write_atomic(out / "perf.md", text)
    print(text)
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    if args.rewrite_report:
        return rewrite_report(Path(args.output_dir or f"bench-runs/perf-{args.shape}"))
    if args.only:
        from benchmarks.perf.layouts import run

        if args.logprobs == "full":
            from benchmarks.perf import full_vocab

            full_vocab.install()

        print(json.dumps(run(args.only, args)))
        return 0
    out = Path(args.output_dir or f"bench-runs/perf-{args.shape}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for layout in args.layouts:
        results.append(run_one(layout, args))
        print(f"perf: {layout} {'failed' if 'error' in results[-1] else 'done'}", flush=True)
    rates = measure_device()
    from aligner.bench.run import versions
    from aligner.harness.rundir import write_atomic, write_json

    command = "python -m benchmarks.perf " + " ".join(sys.argv[1:] if argv is None else argv)
    settings = {k: v for k, v in vars(args).items() if k not in ("only", "output_dir", "layouts")}
    write_json(out / "perf.json", {"command": command, "args": settings, "versions": versions(), "rates": rates,
                                   "results": results})
    text = report(results, rates, args) + f"\nCommand: `{command}`\n"
    write_atomic(out / "perf.md", text)
    print(text)
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
