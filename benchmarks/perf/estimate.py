"""Peak tensor memory of a layout's training step at shapes that do not fit this machine.

The step runs on fake tensors (torch's FakeTensorMode: every operator computes its output's shape and dtype and
allocates nothing) under aligner's storage counter (aligner.harness.memory), so the count is of the tensors the real step
would hold, operator by operator, through the same code: the perf suite's layouts (benchmarks.perf.layouts) and
the online engine's scoring and update with PPO's critic. Where a real run looks at a value (`.item()`, `if tensor:`), the fake one
gets a plausible constant (1, 1.0 or True), which decides no shape.

What differs from a real step, and how:
- Generation is a prefill of the prompts, the response appended to the dynamic KV cache in one pass, and one
  decoding step at full length (`generation`), without `model.generate`'s sampling bookkeeping (a few batch-sized
  vectors): generation's peak is over-, never under-counted.
- Every response is `response_length` tokens: the longest a rollout can be, so the estimate is of the worst step.
- DPO is the forward and loss of TRL's DPOTrainer (the policy with `fused_lm_head=True` and gradients, the
  reference with adapters off and without) followed by AdamW's step, not TRL's whole training loop.
- The count is of tensor storages, as `torch.cuda.max_memory_allocated` is on a GPU, less the caching allocator's
  rounding of each block to 512 bytes and any temporaries a kernel allocates inside itself.
`python -m benchmarks.perf.estimate --validate` compares estimate and measurement at a size that fits.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import types
from pathlib import Path

import torch

from aligner.harness.memory import StorageCounter
from aligner.modeling.base import checkpointing_active, enable_gradient_checkpointing
from benchmarks.perf import world as perf_world
from benchmarks.perf.layouts import LAYOUTS, LORA_RANK, OFFLINE

ESTIMATED = [layout for layout in LAYOUTS if OFFLINE.get(layout, ("", "trl"))[1] == "trl"]
"""The layouts this estimator models: PPO's and DPO through TRL. The offline engine's layouts (dpo, simpo) gather
response tokens by a boolean mask, whose output shape fake tensors cannot know; they are measured only."""


class FakeCounter(StorageCounter):
    """Counts fake tensors' storages; answers data-dependent scalars with a constant."""

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            tensor = args[0]
            return True if tensor.dtype == torch.bool else 1.0 if tensor.is_floating_point() else 1
        return super().__torch_dispatch__(func, types_, args, kwargs)


def _to_in_place(self, *args, **kwargs):
    """`Module.to` for fake parameters: torch swaps a fake parameter for its converted copy, which fails on the
    references fake tensor mode keeps; assigning `.data` converts it in place instead (and a no-op stays one)."""
    device, dtype, _, _ = torch._C._nn._parse_to(*args, **kwargs)
    for tensor in [*self.parameters(), *self.buffers()]:
        target_dtype = dtype if dtype is not None and tensor.is_floating_point() else tensor.dtype
        target_device = device if device is not None else tensor.device
        if tensor.dtype != target_dtype or tensor.device != target_device:
            tensor.data = tensor.data.to(device=target_device, dtype=target_dtype)
    return self


def _where(dtype):
    from aligner.modeling.base import Placement

    return Placement(torch.device("cpu"), dtype)


@torch.no_grad()
def generation(model, ids: torch.Tensor, prompt_length: int) -> None:
    """What `model.generate` holds at its peak, in three passes instead of one per token: the prefill of the prompts,
    the response's first tokens appended to the dynamic KV cache in one pass (its transient activations are those
    of R - 1 tokens at once, more than any single decoding step's: an upper bound), then one decoding step with the
    cache at full length."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    mask = torch.ones_like(ids)
    end = ids.shape[1]
    for start, stop in ((0, prompt_length), (prompt_length, end - 1), (end - 1, end)):
        if stop > start:
            out = model(input_ids=ids[:, start:stop], attention_mask=mask[:, :stop], past_key_values=cache,
                        use_cache=True, logits_to_keep=1)
            torch.softmax(out.logits[:, -1].float(), -1)
    del cache, out


def ppo_step(layout: str, shape: str, batch: int, prompt_length: int, response_length: int, dtype,
             checkpointing: bool = False) -> None:
    import importlib

    from aligner.online.estimators import estimator
    from aligner.online.rollout import sampler_logprobs
    from benchmarks.perf.layouts import build_ppo, ppo_iteration, ppo_settings

    cfg = ppo_settings(layout, batch, prompt_length, response_length)
    cfg.max_length = prompt_length + response_length + 1
    importlib.import_module("aligner_ppo.train")  # registers PPO's advantage estimator
    tok = perf_world.tokenizer(shape, prompt_length + response_length)
    parts = build_ppo(layout, shape, tok, _where(dtype), cfg)
    if checkpointing:
        for model in parts.trained:
            enable_gradient_checkpointing(model)
    optimizer = torch.optim.AdamW(parts.params, lr=cfg.learning_rate, eps=1e-5)
    advantages = estimator("ppo", cfg)
    ids = torch.randint(4, perf_world.SHAPES[shape]["vocab_size"], (batch, prompt_length + response_length))
    # as the measured run: the sampler's log-probs where `--old-logprobs auto` takes them, else a forward pass
    sampled = torch.zeros(batch, response_length) if sampler_logprobs(cfg.old_logprobs, parts.model) else None
    for step in (1, 2):  # the second holds AdamW's moments from the start, as every later step does
        generation(parts.model, ids, prompt_length)
        rollout = types.SimpleNamespace(input_ids=ids, attention_mask=torch.ones_like(ids),
                                        prompt_length=prompt_length, prompts=[""] * batch,
                                        response_mask=torch.ones(batch, response_length, dtype=torch.long),
                                        has_eos=torch.ones(batch, dtype=torch.bool),
                                        logprobs=sampled)
        ppo_iteration(parts, rollout, cfg, optimizer, advantages, torch.Generator().manual_seed(0), step,
                      torch.device("cpu"))
        del rollout


def trl_dpo_step(shape: str, batch: int, prompt_length: int, response_length: int, dtype,
                 checkpointing: bool = False) -> None:
    """One step of TRL's DPO loss on `batch` pairs (chosen and rejected in one batch of 2 x batch rows)."""
    import torch.nn.functional as F
    from peft import LoraConfig, get_peft_model
    from trl.trainer.utils import add_fused_lm_head

    tok = perf_world.tokenizer(shape, prompt_length + response_length)
    base = perf_world.model(shape, tok, torch.device("cpu"), dtype)
    add_fused_lm_head(base)  # as DPOTrainer does: log-probs in tiles, never the whole logits
    if checkpointing:
        enable_gradient_checkpointing(base)
    model = get_peft_model(base, LoraConfig(r=LORA_RANK, lora_alpha=2 * LORA_RANK, target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad])
    length = prompt_length + response_length
    ids = torch.randint(4, perf_world.SHAPES[shape]["vocab_size"], (2 * batch, length))
    completion = torch.zeros_like(ids)
    completion[:, prompt_length:] = 1
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
    labels = ids.masked_fill(completion == 0, -100)
    for _ in range(2):  # the second step holds AdamW's moments from the start
        stack = contextlib.ExitStack()
        stack.enter_context(checkpointing_active(model))
        logps = model(**kwargs, labels=labels, fused_lm_head=True).log_probs[:, -(length - 1):].sum(1)
        with torch.no_grad(), model.disable_adapter():
            ref = model(**kwargs, labels=labels, fused_lm_head=True).log_probs[:, -(length - 1):].sum(1)
        chosen, rejected = (logps - ref).chunk(2)
        loss = -F.logsigmoid(0.1 * (chosen - rejected)).mean()
        loss.backward()
        stack.close()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        del logps, ref, chosen, rejected, loss


def estimate(layout: str, shape: str, batch: int, prompt_length: int, response_length: int, dtype,
             checkpointing: bool = False) -> float:
    """Peak tensor MiB of one step of `layout`, weights included."""
    from unittest import mock

    from torch._subclasses.fake_tensor import FakeTensorMode

    with mock.patch.object(torch.nn.Module, "to", _to_in_place), FakeTensorMode(allow_non_fake_inputs=True), \
            FakeCounter("cpu") as counter:
        if layout == "dpo-trl":
            trl_dpo_step(shape, batch, prompt_length, response_length, dtype, checkpointing)
        else:
            ppo_step(layout, shape, batch, prompt_length, response_length, dtype, checkpointing)
    return counter.peak / 2**20


def validate(perf_json: Path, output: str | None) -> int:
    measured = json.loads(perf_json.read_text())
    args = measured["args"]
    if args.get("logprobs") == "full":
        from benchmarks.perf import full_vocab

        full_vocab.install()
    rows = []
    for r in measured["results"]:
        if "peak_tensor_mb" not in r:
            continue
        if r["layout"] not in ESTIMATED:
            print(f"{r['layout']}: measured {r['peak_tensor_mb']:,.0f} MiB, not estimated", flush=True)
            continue
        mb = estimate(r["layout"], args["shape"], args["batch"], args["prompt_length"], args["response_length"],
                      getattr(torch, r["dtype"]))
        rows.append({"layout": r["layout"], "measured_mb": r["peak_tensor_mb"], "estimated_mb": mb,
                     "estimate_over_measured": mb / r["peak_tensor_mb"]})
        print(f"{r['layout']}: measured {r['peak_tensor_mb']:,.0f} MiB, estimated {mb:,.0f} MiB "
              f"({mb / r['peak_tensor_mb']:.3f}x)", flush=True)
    if output:
        from aligner.harness.rundir import write_json

        write_json(Path(output), {"validates": str(perf_json), "measured_command": measured["command"],
                                  "logprobs": args.get("logprobs", "lean"), "rows": rows})
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.perf.estimate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", choices=sorted(perf_world.SHAPES), default=["qwen2.5-0.5b"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--prompt-length", type=int, default=256)
    parser.add_argument("--response-length", type=int, default=256)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--layouts", nargs="+", choices=ESTIMATED, default=ESTIMATED)
    parser.add_argument("--logprobs", choices=("lean", "full"), default="lean",
                        help="full: the full-vocabulary log-prob routines aligner used before (for a before/after).")
    parser.add_argument("--gradient-checkpointing", action="store_true",
                        help="Checkpoint every decoder layer of the trained models (aligner's --gradient-checkpointing).")
    parser.add_argument("--output", default=None, help="Write the estimates here as JSON.")
    parser.add_argument("--validate", metavar="PERF_JSON", default=None,
                        help="Estimate the layouts of a measured perf suite run (its perf.json) at its shape, batch, "
                             "lengths and dtype, and compare with what it measured.")
    args = parser.parse_args(argv)
    if args.validate:
        return validate(Path(args.validate), args.output)
    if args.logprobs == "full":
        from benchmarks.perf import full_vocab

        full_vocab.install()
    dtype = getattr(torch, args.dtype)
    rows = []
    for shape in args.shapes:
        for layout in args.layouts:
            mb = estimate(layout, shape, args.batch, args.prompt_length, args.response_length, dtype,
                          args.gradient_checkpointing)
            rows.append({"shape": shape, "layout": layout, "peak_tensor_mb": mb})
            print(f"{shape} {layout}: {mb:,.0f} MiB", flush=True)
    result = {"command": "python -m benchmarks.perf.estimate " + " ".join(sys.argv[1:] if argv is None else argv),
              "batch": args.batch, "prompt_length": args.prompt_length, "response_length": args.response_length,
              "dtype": args.dtype, "logprobs": args.logprobs, "gradient_checkpointing": args.gradient_checkpointing,
              "estimates": rows}
    if args.output:
        from aligner.harness.rundir import write_json

        write_json(Path(args.output), result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
