"""What a committed benchmark figure was measured on (the CPU, its cores and torch's threads, the versions of the
libraries the figure depends on), and how a benchmark writes its figures: `<output>.json` and `<output>.md`."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def environment() -> dict:
    """{"machine": "<cpu>, N cores, torch threads T", "versions": {torch, transformers, trl}}."""
    import torch
    import transformers
    import trl

    return {"machine": f"{cpu_name()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "trl": trl.__version__}}


def describe(env: dict) -> str:
    """One line for a report's header."""
    return f"{env['machine']}; " + ", ".join(f"{k} {v}" for k, v in env["versions"].items())


def publish(output: str, result: dict, lines: list[str]) -> None:
    """Writes `output`.json (the result) and `output`.md (the report's lines), and prints the report."""
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    # suffixes appended, never substituted: "grpo-race-qwen2.5-0.5b" keeps its ".5b"
    out.parent.joinpath(out.name + ".json").write_text(json.dumps(result, indent=2) + "\n")
    out.parent.joinpath(out.name + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def in_fresh_process(call: str, what: str) -> dict:
    """The JSON value of `call` (an expression over an imported `benchmarks` module, e.g.
    "benchmarks.grpo_race.run_trl(10, 0)") evaluated in a fresh Python process, offline, so no measured run
    inherits another's caches, threads or memory peak; a failure ends the benchmark naming `what`."""
    module = call.split("(")[0].rsplit(".", 1)[0]
    code = f"import json, {module}; print('RESULT', json.dumps({call}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    lines = [line for line in out.stdout.splitlines() if line.startswith("RESULT ")]
    if out.returncode or not lines:
        raise SystemExit(f"{what} failed:\n{out.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])
