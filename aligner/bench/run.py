"""`aligner bench`: validate a suite, run what is not finished, then evaluate side by side."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import shlex
import sys
from pathlib import Path

from aligner.bench import execute, plots, results
from aligner.bench import suite as suite_mod
from aligner.harness import rundir

VERSIONED = ["aligner", "torch", "transformers", "peft", "trl", "datasets", "vaderSentiment"]


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def run_bench(suite_spec: str | None, output_dir: str | None, rerun: bool, registry, log=print,
              num_processes: int = 1) -> dict:
    suite = suite_mod.load(suite_spec, registry)
    suite_mod.check_common_is_shared(suite)
    out = Path(output_dir) if output_dir else Path("bench-runs") / suite.name
    suite = dataclasses.replace(suite, runs=[execute.with_shared_paths(out, spec) for spec in suite.runs])
    claim = rundir.claim(out)  # two suites writing into one directory would overwrite each other's runs
    try:
        out.mkdir(parents=True, exist_ok=True)
        log(f"aligner bench: suite {suite.name!r} ({suite.path}), {len(suite.runs)} runs, writing to {out}")
        execute.execute(suite, out, rerun=rerun, log=log, num_processes=num_processes)
        return _report(suite, out, suite_spec, log)
    finally:
        claim.release()


def _report(suite, out: Path, suite_spec, log) -> dict:
    records = [results.record(out, spec) for spec in suite.runs]
    rows = results.aggregate(records)
    command = "aligner bench" + "".join(f" {shlex.quote(a)}" for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] \
        else f"aligner.bench.run_bench({suite_spec!r})"
    results.write(out, suite, records, rows, command, versions())
    plots.reward_vs_kl(rows, out / "reward_vs_kl.png")
    plots.resources(rows, out / "resources.png")
    plots.reward_vs_compute(rows, out / "reward_vs_compute.png")
    log(results.markdown_table(rows))
    failed = [r["id"] for r in records if r["status"] != "finished"]
    if failed:
        log(f"aligner bench: {len(failed)} run(s) did not finish: {', '.join(failed)} (see {out / 'failed'})")
    log(f"aligner bench: results in {out}")
    return {"output_dir": str(out), "records": records, "aggregates": rows, "failed": failed}
