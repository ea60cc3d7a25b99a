"""The `aligner` command. Every flag of `aligner run ALGO` is generated from ALGO's config dataclass."""

from __future__ import annotations

import argparse
import inspect
import json
import sys

from aligner import config as config_mod
from aligner import plugins
from aligner.errors import AlignerError, UsageError
from aligner.harness import stopping, storage, terminal


def _plugins_command(args) -> int:
    loaded = plugins.default()
    rows = []
    for info in loaded.plugins.values():
        rows.append({
            "name": info.name, "module": info.module, "distribution": info.distribution, "version": info.version,
            "algorithms": [{"name": n, "description": loaded.registry.algorithms[n].description,
                            "data": list(loaded.registry.algorithms[n].accepts)}
                           for n in info.algorithms if n in loaded.registry.algorithms],
            "reward_functions": [{"name": n, "description": loaded.registry.reward_functions[n].description}
                                 for n in info.reward_functions if n in loaded.registry.reward_functions],
            "errors": info.errors,
        })
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        print(f"{row['name']}  ({row['distribution']} {row['version']}, {row['module']})")
        for a in row["algorithms"]:
            print(f"    algorithm        {a['name']:<10} {a['description']} [data: {', '.join(a['data'])}]")
        for r in row["reward_functions"]:
            print(f"    reward function  {r['name']:<10} {r['description']}")
        for e in row["errors"]:
            print(f"    ERROR            {e}")
    return 0


def _bench_command(args) -> int:
    from aligner.bench.run import report_bench, run_bench

    if args.suite == "report":
        if not args.directory:
            raise UsageError("aligner bench report DIR: name the bench's output directory")
        report_bench(args.directory, plugins.default().registry)
        return 0
    if args.directory:
        raise UsageError(f"aligner bench: unexpected argument {args.directory!r} (one suite at a time; "
                         f"`aligner bench report DIR` reports a finished bench again)")
    if args.num_processes < 1:
        raise UsageError(f"--num-processes must be >= 1, got {args.num_processes}")
    outcome = run_bench(args.suite, args.output_dir, args.rerun, plugins.default().registry,
                        num_processes=args.num_processes)
    return 1 if outcome["failed"] else 0


def _runs_command(args) -> int:
    """Lists (and with --clean removes) the partial directories that runs killed or failed left behind."""
    import shutil
    from pathlib import Path

    from aligner.harness import rundir

    found = []
    for root in args.directories:
        if not Path(root).is_dir():
            raise UsageError(f"aligner runs {root}: no such directory")
        found += rundir.find_partials(Path(root))
    if not found:
        print(f"no partial runs under {', '.join(args.directories)}")
        return 0
    for partial in found:
        if partial.in_use:
            state = "in use by a running aligner process"
        elif partial.checkpoints:
            state = f"resumable from {partial.checkpoints[-1].name}: --resume {partial.path}"
        else:
            state = "no checkpoint"
        removing = args.clean and not partial.in_use
        print(f"{'removed' if removing else 'partial'}  {partial.path}  (for {partial.destination}; {state})")
        if removing:
            shutil.rmtree(partial.path)
    if not args.clean:
        print("aligner runs --clean removes those not in use")
    return 0


def _run_command(args, parser: argparse.ArgumentParser) -> int:
    from aligner.harness.runner import run

    algo = plugins.default().registry.algorithm(args.algorithm)
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "algorithm", "config", "handler", "verbose", "command_line")}
    file_values = config_mod.read_yaml(args.config, algo.config_class) if args.config else {}
    cfg = config_mod.build(algo.config_class, file_values, given)
    if cfg.device != "cuda":
        from aligner.parallel import threads

        threads.adapt_to_load()
    run(args.algorithm, cfg, verbose=True, command=args.command_line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    loaded = plugins.default()
    parser = argparse.ArgumentParser(prog="aligner", description="Align language models with LoRA adapters on one "
                                                                 "frozen base, and compare algorithms honestly.")
    verbose = argparse.ArgumentParser(add_help=False)
    verbose.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                         help="Show the libraries' own warnings, logs and progress bars (hidden by default).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.algorithm_parsers = {}
    p = commands.add_parser("plugins", help="List installed plugins and what each registers.", parents=[verbose])
    p.add_argument("--json", action="store_true", help="Machine-readable output.")
    p.set_defaults(handler=lambda a: _plugins_command(a))

    bench = commands.add_parser("bench", help="Run a benchmark suite: every algorithm from the same base on the "
                                              "same data, evaluated alike, side by side.", parents=[verbose])
    bench.add_argument("suite", nargs="?", default=None,
                       help="A suite YAML file, or a built-in suite name (default: default); `report DIR` "
                            "writes the report of a bench's output directory again, training nothing.")
    bench.add_argument("directory", nargs="?", default=None, help=argparse.SUPPRESS)
    bench.add_argument("--output-dir", help="Where runs and results go (default: bench-runs/<suite name>). "
                                            "Re-running into it keeps finished runs.")
    bench.add_argument("--rerun", action="store_true", help="Run every run again, finished or not.")
    bench.add_argument("--num-processes", type=int, default=1, metavar="N",
                       help="Run each run data-parallel on N processes (torchrun; one per GPU).")
    bench.set_defaults(handler=lambda a: _bench_command(a))

    runs = commands.add_parser("runs", help="List the partial directories that killed or failed runs left "
                                             "behind (resumable ones included); --clean removes them.",
                               parents=[verbose])
    runs.add_argument("directories", nargs="*", default=["runs"], metavar="DIR",
                      help="Where to look, searched recursively (default: runs).")
    runs.add_argument("--clean", action="store_true", help="Remove every partial directory no running process "
                                                           "uses, resumable ones included.")
    runs.set_defaults(handler=lambda a: _runs_command(a))

    run_parser = commands.add_parser("run", help="Train one algorithm; `aligner run ALGO --help` lists its flags.")
    algorithms = run_parser.add_subparsers(dest="algorithm", required=True, metavar="ALGORITHM")
    for name, algo in sorted(loaded.registry.algorithms.items()):
        sub = algorithms.add_parser(name, help=algo.description, parents=[verbose],
                                    description=inspect.cleandoc(algo.config_class.__doc__ or ""))
        sub.add_argument("--config", metavar="FILE.yaml", help="Settings file; flags given on the command line "
                                                               "override it.")
        config_mod.add_arguments(sub, algo.config_class)
        sub.set_defaults(handler=lambda a, _p=sub: _run_command(a, _p))
        parser.algorithm_parsers[name] = sub
    return parser


def _refuse_unknown(parser: argparse.ArgumentParser, args, unknown: list[str]) -> None:
    """An unknown flag of `aligner run ALGO` is reported by ALGO's parser, with its valid flags and the closest
    match, instead of the top-level usage."""
    import difflib

    sub = parser.algorithm_parsers.get(getattr(args, "algorithm", None)) if args.command == "run" else None
    if sub is None:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    flags = sorted({o for action in sub._actions for o in action.option_strings if o.startswith("--")})
    flag = next((u.split("=")[0] for u in unknown if u.startswith("-")), unknown[0])
    close = difflib.get_close_matches(flag, flags, n=1)
    hint = f"; did you mean {close[0]}?" if close else ""
    sub.error(f"unrecognized arguments: {' '.join(unknown)}{hint} (valid flags of {args.algorithm}: "
              f"{', '.join(flags)})")


def main(argv: list[str] | None = None) -> int:
    """Exit codes: 0 done, 2 bad input or settings (`aligner.errors.InputError`), 1 a failure while running
    (`RunError`, a storage fault), 128 + the signal's number when stopped by one: 130 Ctrl-C (SIGINT), 143
    SIGTERM, 129 SIGHUP (`aligner.harness.stopping`)."""
    try:
        with stopping.handled():
            return _main(argv)
    except KeyboardInterrupt as interrupt:
        terminal.end_progress_bars()
        if not getattr(interrupt, "quiet", False):
            what = stopping.what_stopped(stopping.signal_of(interrupt))
            print(f"aligner: {interrupt or f'{what}; nothing was written'}", file=sys.stderr)
        return stopping.exit_code(interrupt)
    except BrokenPipeError:  # `aligner plugins | head`: the reader left; end quietly, as shell tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        _refuse_unknown(parser, args, unknown)
    if not getattr(args, "verbose", False):
        terminal.quiet_libraries()

    args.command_line = ["aligner", *(sys.argv[1:] if argv is None else argv)]
    try:
        return args.handler(args)
    except AlignerError as error:
        terminal.end_progress_bars()
        print(f"aligner: error: {error}", file=sys.stderr)
        return error.exit_code
    except Exception as error:
        found = storage.fault(error)
        if found is None:
            raise
        terminal.end_progress_bars()  # a write that failed outside a run (a bench's results, the toy world's cache)
        print(f"aligner: error: could not write {storage.describe(found)}", file=sys.stderr)
        return 1

if __name__ == "__main__":
    sys.exit(main())
