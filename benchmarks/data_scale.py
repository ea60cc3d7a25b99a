"""How aligner's data path scales with rows: `aligner run simpo --max-steps 1` on a synthetic preference parquet of
short rows, and `aligner run grpo --max-steps 1` on prompt-only rows with a reward function, each a fresh process
timed from outside (wall time and the child's peak resident memory), with a fresh `datasets` cache ("cold": the
parquet is converted to Arrow once) and again with that cache ("warm").

    python -m benchmarks.data_scale --rows 1000000 --out benchmarks/results/data-scale

Every row is validated; the embedded toy model trains one step, so the figures are the data path's cost plus a
fixed cost (imports, the toy model, two evaluations of --eval-prompts prompts) that `--rows 1000` shows alone.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REWARD = '''
def first_word_good(prompts, completions, **columns):
    return [1.0 if c.split()[:1] == ["good"] else 0.0 for c in completions]
'''


def write_rows(path: Path, rows: int, prompt_only: bool, seed: int = 0) -> None:
    """Short rows in the toy grammar's words, written in row groups so 10M rows never sit in memory at once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from aligner.toy import grammar

    rng = random.Random(seed)
    words = grammar.NOUNS + grammar.POSITIVE + grammar.NEGATIVE
    writer = None
    for start in range(0, rows, 500_000):
        n = min(500_000, rows - start)
        prompts = [f"the {words[(start + i) % len(words)]} {rng.choice(grammar.VERBS)} {rng.choice(words)} "
                   f"{rng.choice(words)} {start + i}" for i in range(n)]
        columns = {"prompt": prompts}
        if prompt_only:
            columns["answer"] = [rng.choice(grammar.POSITIVE) for _ in range(n)]
        else:
            columns["chosen"] = [f" it is {rng.choice(grammar.POSITIVE)} ." for _ in range(n)]
            columns["rejected"] = [f" it is {rng.choice(grammar.NEGATIVE)} ." for _ in range(n)]
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()


def timed(command: list[str], env: dict, log: Path) -> dict:
    """Wall seconds and peak RSS (MB) of one child process, from the kernel's accounting of that child alone."""
    started = time.perf_counter()
    with open(log, "w") as err:
        child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    text = log.read_text()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(command)}\n{text[-3000:]}")
    data_line = next((line for line in text.splitlines() if line.startswith("aligner: data:")), "")
    return {"wall_seconds": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "data_line": data_line}


def run_one(rows: int, algorithm: str, work: Path) -> list[dict]:
    prompt_only = algorithm == "grpo"
    path = work / f"{'prompts' if prompt_only else 'pairs'}-{rows}.parquet"
    if not path.exists():
        write_rows(path, rows, prompt_only)
    reward_file = work / "reward.py"
    reward_file.write_text(REWARD)
    command = [sys.executable, "-m", "aligner", "run", algorithm, "--dataset", str(path), "--max-steps", "1",
               "--overwrite", "--output-dir", str(work / f"run-{algorithm}-{rows}")]
    if prompt_only:
        command += ["--reward", f"{reward_file}:first_word_good"]
    out = []
    cache = work / f"hf-cache-{algorithm}-{rows}"
    for phase in ("cold", "warm"):
        env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
        result = timed(command, env, work / f"{algorithm}-{rows}-{phase}.log")
        out.append({"algorithm": algorithm, "rows": rows, "cache": phase,
                    "file_mb": round(path.stat().st_size / 2**20, 1), **result})
        print(json.dumps(out[-1]), flush=True)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--algorithms", nargs="+", default=["simpo", "grpo"])
    parser.add_argument("--out", type=Path, help="write OUT.json and OUT.md")
    args = parser.parse_args(argv)
    import torch

    results = []
    with tempfile.TemporaryDirectory(prefix="aligner-data-scale-") as work:
        for rows in args.rows:
            for algorithm in args.algorithms:
                results += run_one(rows, algorithm, Path(work))
    import datasets
    import transformers

    meta = {"command": "python -m benchmarks.data_scale " + " ".join(argv or sys.argv[1:]),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "datasets": datasets.__version__}, "runs": results}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
        lines = ["| command | rows | parquet (MB) | datasets cache | wall (s) | peak RSS (MB) |",
                 "| --- | --- | --- | --- | --- | --- |"]
        for r in results:
            lines.append(f"| aligner run {r['algorithm']} --max-steps 1 | {r['rows']:,} | {r['file_mb']} | "
                         f"{r['cache']} | {r['wall_seconds']} | {r['peak_rss_mb']} |")
        args.out.with_suffix(".md").write_text(
            f"# Data path at scale\n\n`{meta['command']}` on {meta['machine']}; torch {torch.__version__}, "
            f"transformers {transformers.__version__}, datasets {datasets.__version__}.\n\n" + "\n".join(lines)
            + "\n\nStart lines (what was found, dropped and truncated):\n\n"
            + "\n".join(f"- {r['algorithm']} {r['rows']:,} ({r['cache']}): `{r['data_line']}`" for r in results)
            + "\n")
    for r in results:
        print(f"{r['algorithm']:6s} {r['rows']:>10,} rows  {r['cache']:4s}  {r['wall_seconds']:6.1f} s  "
              f"{r['peak_rss_mb']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
