"""Speed and memory of every role-on-one-base layout at real model shapes (random weights: speed and memory do not
depend on their values), against the layout users would otherwise run: four full copies of the model.

    python -m aligner.bench.perf --shape qwen2.5-0.5b             # GPU, bf16, batch 64, 128 + 128 tokens
    python -m aligner.bench.perf --shape tiny --batch 4 --prompt-length 16 --response-length 16   # CPU check

Each layout runs in its own process, so one layout's memory peak cannot leak into another's. Reported per layout:
peak memory (GPU: max_memory_allocated; CPU: peak RSS), seconds per step split into rollout / scoring / update,
generation tokens per second and its share of the memory-bandwidth roofline, and update MFU: LoRA training FLOPs
(aligner.bench.flops) over time, against the matmul rate measured on the same device in the same dtype.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from aligner.bench.flops import Shape, forward_flops, lora_train_flops

SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True),
    "tiny": dict(hidden_size=128, intermediate_size=352, num_hidden_layers=4, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=2048, tie_word_embeddings=True),
}
LAYOUTS = ["dpo", "ppo-shared", "ppo-separate", "ppo-copies"]


def build_model(shape: str, device, dtype, seed: int = 0):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(**SHAPES[shape], max_position_embeddings=4096, pad_token_id=0, eos_token_id=1,
                         bos_token_id=1)
    model = Qwen2ForCausalLM(config).to(device=device, dtype=dtype).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(device, fn):
    sync(device)
    started = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - started


def matmul_rate(device, dtype, n: int) -> float:
    """Measured dense matmul FLOP/s in `dtype` on `device` (the MFU denominator)."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _, seconds = timed(device, lambda: [a @ b for _ in range(10)])
    return 10 * 2 * n ** 3 / seconds


def bandwidth(device, n_bytes: int) -> float:
    """Measured copy bandwidth in bytes/s (each copy reads and writes `n_bytes`)."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    _, seconds = timed(device, lambda: [dst.copy_(src) for _ in range(10)])
    return 10 * 2 * n_bytes / seconds


def peak_memory_mb(device) -> float:
    from aligner.resources import peak_memory_mb as peak

    return peak(device)


def lora(model, name="default"):
    from peft import LoraConfig, get_peft_model

    return get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"), adapter_name=name)


def run_layout(layout: str, args) -> dict:
    from aligner.heads import ScalarHead
    from aligner.models import active_adapter, add_adapter

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    B, P, R = args.batch, args.prompt_length, args.response_length
    shape = Shape.of(_config(args.shape))
    prompts = torch.randint(2, SHAPES[args.shape]["vocab_size"], (B, P), device=device)
    hidden = SHAPES[args.shape]["hidden_size"]
    result = {"layout": layout, "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "dtype": str(dtype).removeprefix("torch.")}

    if layout == "dpo":
        policy = lora(build_model(args.shape, device, dtype))
        params = [p for p in policy.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        ids = torch.randint(2, SHAPES[args.shape]["vocab_size"], (2 * B, P + R), device=device)

        def step():
            with torch.no_grad(), policy.disable_adapter():
                policy(input_ids=ids)
            policy(input_ids=ids).logits.float().logsumexp(-1).mean().backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step()
        _, seconds = timed(device, step)
        flops = lora_train_flops(shape, 2 * B, P + R, 16) + forward_flops(shape, 2 * B, P + R)
        result.update(update_seconds=seconds, update_flops=flops)
    else:
        copies = layout == "ppo-copies"
        policy = lora(build_model(args.shape, device, dtype))
        value_head = ScalarHead(hidden, zero_init=True).to(device)
        if copies:
            reference = build_model(args.shape, device, dtype)
            critic = lora(build_model(args.shape, device, dtype), "critic")
            reward = build_model(args.shape, device, dtype)
            trainable = [p for p in policy.parameters() if p.requires_grad] + \
                [p for p in critic.parameters() if p.requires_grad]
        else:
            add_adapter(policy, "reward")
            if layout == "ppo-separate":
                add_adapter(policy, "critic")
            trainable = [p for n, p in policy.named_parameters() if "lora_" in n and (".default." in n or (
                ".critic." in n))]
        reward_head = ScalarHead(hidden, zero_init=False).to(device)
        trainable += list(value_head.parameters())
        for p in trainable:
            p.requires_grad_(True)
        optimizer = torch.optim.AdamW(trainable, lr=1e-5)

        def rollout():
            return policy.generate(input_ids=prompts, attention_mask=torch.ones_like(prompts), do_sample=True,
                                   max_new_tokens=R, min_new_tokens=R, top_k=0, pad_token_id=0,
                                   cache_implementation="static" if device.type == "cuda" else None)

        def values_of(ids):
            if copies:
                return value_head(critic(input_ids=ids, output_hidden_states=True).hidden_states[-1])
            if layout == "ppo-separate":
                with active_adapter(policy, "critic", trainable):
                    return value_head(policy(input_ids=ids, output_hidden_states=True).hidden_states[-1])
            return None

        def scoring(ids):
            with torch.no_grad():
                if copies:
                    reference(input_ids=ids)
                    reward_head(reward(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1])
                else:
                    with policy.disable_adapter():
                        policy(input_ids=ids)
                    with active_adapter(policy, "reward", trainable):
                        reward_head(policy(input_ids=ids, output_hidden_states=True).hidden_states[-1][:, -1])
                policy(input_ids=ids)
                values_of(ids)

        def update(ids):
            out = policy(input_ids=ids, output_hidden_states=True)
            values = values_of(ids)
            if values is None:
                values = value_head(out.hidden_states[-1])
            (out.logits.float().logsumexp(-1).mean() + values.float().pow(2).mean()).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        ids = rollout()  # warm-up: kernels, caches, compilation
        scoring(ids)
        update(ids)
        ids, rollout_seconds = timed(device, rollout)
        _, scoring_seconds = timed(device, lambda: scoring(ids))
        _, update_seconds = timed(device, lambda: update(ids))
        flops = lora_train_flops(shape, B, P + R, 16) * (2 if layout != "ppo-shared" else 1)
        weight_bytes = sum(p.numel() * p.element_size() for p in policy.parameters())  # read once per decode step
        kv_dim = SHAPES[args.shape]["num_key_value_heads"] * hidden // SHAPES[args.shape]["num_attention_heads"]
        kv_bytes = sum(2 * shape.layers * kv_dim * (P + t) * B * torch.finfo(dtype).bits // 8 for t in range(R))
        result.update(rollout_seconds=rollout_seconds, scoring_seconds=scoring_seconds, update_seconds=update_seconds,
                      update_flops=flops, generation_tokens_per_second=B * R / rollout_seconds,
                      decode_bytes=weight_bytes * R + kv_bytes)
    result["peak_memory_mb"] = peak_memory_mb(device)
    return result


def _config(shape: str):
    from transformers import Qwen2Config

    return Qwen2Config(**SHAPES[shape])


def measure_device(args) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    n = 8192 if device.type == "cuda" else 1024
    return {"matmul_flops_per_second": matmul_rate(device, dtype, n),
            "bandwidth_bytes_per_second": bandwidth(device, (2 << 30) if device.type == "cuda" else (256 << 20))}


def report(results: list[dict], rates: dict, args) -> str:
    by = {r["layout"]: r for r in results}
    lines = [f"# aligner perf: {args.shape}, batch {args.batch}, prompt {args.prompt_length} + response "
             f"{args.response_length} tokens, {results[0]['device']} {results[0]['dtype']}", "",
             f"Measured: matmul {rates['matmul_flops_per_second'] / 1e12:.2f} TFLOP/s, copy bandwidth "
             f"{rates['bandwidth_bytes_per_second'] / 1e9:.1f} GB/s", "",
             "| layout | peak memory (MB) | rollout (s) | scoring (s) | update (s) | gen tokens/s | roofline | update MFU |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        mfu = r["update_flops"] / r["update_seconds"] / rates["matmul_flops_per_second"]
        roofline = (r["decode_bytes"] / rates["bandwidth_bytes_per_second"] / r["rollout_seconds"]
                    if "rollout_seconds" in r else None)
        cells = [f"{r['peak_memory_mb']:.0f}"] + [f"{r[k]:.3f}" if k in r else "-" for k in
                                                   ("rollout_seconds", "scoring_seconds", "update_seconds")]
        cells += [f"{r['generation_tokens_per_second']:,.0f}" if "generation_tokens_per_second" in r else "-",
                  f"{roofline:.0%}" if roofline is not None else "-", f"{mfu:.1%}"]
        lines.append(f"| {r['layout']} | " + " | ".join(cells) + " |")
    if {"ppo-shared", "dpo", "ppo-copies"} <= set(by):
        shared = by["ppo-shared"]["peak_memory_mb"]
        lines += ["", f"PPO (all four roles on one base) peak memory: {shared / by['dpo']['peak_memory_mb']:.2f}x "
                      f"DPO's (target <= 1.5x), {shared / by['ppo-copies']['peak_memory_mb']:.2f}x the four-copies "
                      f"layout's (target <= 0.5x)."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aligner.bench.perf", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-length", type=int, default=128)
    parser.add_argument("--response-length", type=int, default=128)
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=LAYOUTS)
    parser.add_argument("--output-dir", default=None, help="Default: bench-runs/perf-<shape>.")
    parser.add_argument("--only", choices=LAYOUTS, help=argparse.SUPPRESS)  # internal: one layout, this process
    args = parser.parse_args(argv)
    if args.only:
        print(json.dumps(run_layout(args.only, args)))
        return 0
    out = Path(args.output_dir or f"bench-runs/perf-{args.shape}")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for layout in args.layouts:
        command = [sys.executable, "-m", "aligner.bench.perf", "--only", layout, "--shape", args.shape, "--batch",
                   str(args.batch), "--prompt-length", str(args.prompt_length), "--response-length",
                   str(args.response_length)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            print(f"perf: layout {layout} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(f"perf: {layout} done", flush=True)
    rates = measure_device(args)
    from aligner.bench.run import versions
    from aligner.rundir import write_atomic, write_json

    command = "python -m aligner.bench.perf " + " ".join(sys.argv[1:] if argv is None else argv)
    write_json(out / "perf.json", {"command": command, "versions": versions(), "rates": rates, "results": results})
    text = report(results, rates, args) + f"\nCommand: `{command}`\n"
    write_atomic(out / "perf.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
