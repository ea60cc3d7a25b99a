"""`aligner bench`: validate a suite, run what is not finished, then evaluate side by side."""

from __future__ import annotations

import dataclasses
import importlib.metadata
import platform
import shlex
import sys
from pathlib import Path

from aligner.bench import compare, execute, frontier_plots, plots, results
from aligner.bench import suite as suite_mod
from aligner.errors import SuiteError
from aligner.harness import rundir

VERSIONED = ["aligner", "torch", "transformers", "peft", "trl", "datasets", "evaluate", "vaderSentiment"]
SUITE_COPY = "suite.yaml"
"""The suite as it was run, kept in the output directory so `aligner bench report DIR` can report it again."""


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
        rundir.write_atomic(out / SUITE_COPY, Path(suite.path).read_text())
        log(f"aligner bench: suite {suite.name!r} ({suite.path}), {len(suite.runs)} runs, writing to {out}")
        execute.execute(suite, out, rerun=rerun, log=log, num_processes=num_processes)
        return _report(suite, out, suite_spec, log)
    finally:
        claim.release()


def report_bench(directory: str, registry, log=print) -> dict:
    """`aligner bench report DIR`: the report of a bench's output directory written again from its runs, training
    nothing (a run that is missing or was made with other settings is reported as such)."""
    out = Path(directory)
    copy = out / SUITE_COPY
    if not copy.is_file():
        raise SuiteError(f"{out}: not a bench output directory (no {SUITE_COPY}; `aligner bench` writes one)")
    suite = suite_mod.load(str(copy), registry)
    suite = dataclasses.replace(suite, runs=[execute.with_shared_paths(out, spec) for spec in suite.runs])
    claim = rundir.claim(out)  # a bench still writing into it would change the runs under the report
    previous = execute.read_json(out / "results.json") or {}
    try:
        return _report(suite, out, str(copy), log, ran=previous.get("command"))
    finally:
        claim.release()


def _report(suite, out: Path, suite_spec, log, ran: str | None = None) -> dict:
    """Writes the results and plots; `ran`: the command that trained the runs, when this report is written again
    from them (it is kept, and the report's own command added)."""
    metrics = results.Metrics()
    records = [results.record(out, spec, metrics) for spec in suite.runs]
    rows = results.aggregate(records)
    command = "aligner bench" + "".join(f" {shlex.quote(a)}" for a in sys.argv[2:]) if sys.argv[1:2] == ["bench"] \
        else f"aligner.bench.run_bench({suite_spec!r})"
    if ran and ran != command:
        command = f"{ran}; reported by {command}"
    comparison = compare.analyse(out, records, suite.runs, suite.kl_budgets)
    results.write(out, suite, records, rows, command, versions(), comparison)
    plots.reward_vs_kl(rows, out / "reward_vs_kl.png")
    plots.resources(rows, out / "resources.png")
    plots.reward_vs_compute(rows, out / "reward_vs_compute.png")
    if comparison["curves"]:
        frontier_plots.frontier(comparison, out / "frontier.png")
        frontier_plots.improvement_matrix(comparison, out / "improvement.png")
    log(results.markdown_table(rows))
    failed = [r["id"] for r in records if r["status"] != "finished"]
    if failed:
        log(f"aligner bench: {len(failed)} run(s) did not finish: {', '.join(failed)} (see {out / 'failed'})")
    log(f"aligner bench: results in {out}")
    return {"output_dir": str(out), "records": records, "aggregates": rows, "failed": failed}
