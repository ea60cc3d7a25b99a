"""Benchmark suites: a YAML file naming the base, the data, the evaluation and the runs to compare.

Every entry is checked against the registry and the algorithms' settings before anything trains, so a typo in
run 14 fails at once, naming the entry, not after an hour.

    name: default
    common: {model: aligner-toy, dataset: aligner-toy, eval_prompts: 128}   # every run gets these
    seeds: [0, 1, 2]
    kl_budgets: [1, 2, 4, 8]      # compare methods at these KLs (default)
    runs:
      - {name: base, algorithm: base}
      - {name: ppo-shared, algorithm: ppo, settings: {critic: shared}}
      - {name: dpo, algorithm: dpo, seeds: [0], sweep: {beta: [0.05, 0.1, 0.5]}}
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from pathlib import Path

import yaml

from aligner import config as config_mod
from aligner.config import ConfigError, RunConfig
from aligner.errors import SuiteError
from aligner.harness.rundir import is_safe_name

SUITE_KEYS = {"name", "description", "common", "seeds", "runs", "shared_reward_model", "kl_budgets"}
SHARED = "@"
"""A setting value `@<run id>` is that run's reward model directory, filled in when the run starts."""
RUN_KEYS = {"name", "algorithm", "settings", "seeds", "sweep"}
MANAGED = {"output_dir", "overwrite", "seed", "resume"}
"""Settings the bench controls itself."""
BUILTIN_DIR = Path(__file__).resolve().parent / "suites"
"""The built-in suites, shipped inside the package (package data), so `aligner bench` works from an installed wheel."""


@dataclass(frozen=True)
class RunSpec:
    id: str              # unique: group + seed, used as the run's directory name
    group: str           # runs that differ only by seed
    name: str            # the suite entry
    algorithm: str
    seed: int
    settings: dict       # every setting given (common + run + sweep point), without output_dir/seed
    sweep: dict          # the sweep point alone, for labels
    resolved: dict = dataclasses.field(default_factory=dict, compare=False)
    """Every setting of the run as `aligner run` will resolve it, defaults included."""
    fingerprint: str = ""
    """`aligner.config.settings_fingerprint` of `resolved`: a finished run whose summary holds another was made with other
    settings (or other defaults) and is run again."""


# Unless a suite sets tensor_memory, a group's first seed counts peak tensor memory and the others do not: counting
# every operator slows a CPU run of a small model (docs/performance.md), and the figure depends on the seed only
# through the lengths of sampled responses.


@dataclass
class Suite:
    name: str
    description: str
    path: Path
    runs: list[RunSpec]
    kl_budgets: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    """The KL budgets (nats per response) at which methods are compared (aligner.bench.compare)."""


def resolve_path(spec: str | None) -> Path:
    """A suite file path, or the name of a built-in suite in aligner/bench/suites/."""
    spec = spec or "default"
    path = Path(spec)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise SuiteError(f"suite {spec}: no such file")
        return path
    builtin = BUILTIN_DIR / f"{spec}.yaml"
    if not builtin.is_file():
        names = ", ".join(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))
        raise SuiteError(f"suite {spec!r}: not a file and not a built-in suite ({names})")
    return builtin


def _label(value) -> str:
    return str(value).replace("/", "_").replace(" ", "")


def _check_seeds(where: str, seeds) -> list[int]:
    if not (isinstance(seeds, list) and seeds and all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)):
        raise SuiteError(f"{where}: seeds must be a non-empty list of integers, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise SuiteError(f"{where}: seeds repeat a value: {seeds!r}")
    return seeds


def _check_ids(path: Path, specs: list[RunSpec]) -> None:
    """Run ids become directory and file names under --output-dir: each must be one safe path component, and
    no two may collide (case-insensitively, as on macOS and Windows file systems), or one run would silently
    stand for another."""
    seen: dict[str, RunSpec] = {}
    for spec in specs:
        if not is_safe_name(spec.id):
            raise SuiteError(f"{path}: run {spec.name!r} gives the run id {spec.id!r}, which cannot be a directory "
                             f"name: use letters, digits, '.', '_', '+' and '-' (no '/', no '..', at most 100 "
                             f"characters)")
        other = seen.get(spec.id.lower())
        if other is not None:
            raise SuiteError(f"{path}: runs {other.name!r} and {spec.name!r} both give the run id {spec.id!r}; "
                             f"rename one")
        seen[spec.id.lower()] = spec


def _check_settings(where: str, algorithm, values: dict, source: str) -> dict:
    cls = algorithm.config_class
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for key, value in (values or {}).items():
        name = str(key).replace("-", "_")
        if name in MANAGED:
            raise SuiteError(f"{where}: setting {key!r} is managed by the bench and cannot be set")
        if name not in names:
            raise SuiteError(f"{where}: unknown setting {key!r} for algorithm {algorithm.name!r}")
        try:
            out[name] = config_mod.coerce(cls, name, value, where)
        except ConfigError as error:
            raise SuiteError(str(error)) from None
    return out


def load(spec: str | None, registry) -> Suite:
    path = resolve_path(spec)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: expected a mapping with {', '.join(sorted(SUITE_KEYS))}")
    unknown = set(data) - SUITE_KEYS
    if unknown:
        raise SuiteError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(SUITE_KEYS))}")
    seeds = _check_seeds(str(path), data.get("seeds", [0]))
    common = data.get("common") or {}
    if not isinstance(common, dict):
        raise SuiteError(f"{path}: common must be a mapping of settings")
    run_entries = data.get("runs")
    if not isinstance(run_entries, list) or not run_entries:
        raise SuiteError(f"{path}: runs must be a non-empty list")

    specs: list[RunSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(run_entries, start=1):
        where = f"{path}: runs[{index}]"
        if not isinstance(entry, dict):
            raise SuiteError(f"{where}: expected a mapping with {', '.join(sorted(RUN_KEYS))}")
        unknown = set(entry) - RUN_KEYS
        if unknown:
            raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(RUN_KEYS))}")
        if "algorithm" not in entry:
            raise SuiteError(f"{where}: missing key 'algorithm'")
        name = entry.get("name", entry["algorithm"])
        if not is_safe_name(name):
            raise SuiteError(f"{where}: run name {name!r} is not allowed: it becomes a directory name, so use "
                             f"letters, digits, '.', '_', '+' and '-' (no '/', no '..', at most 100 characters)")
        where = f"{path}: runs[{index}] ({name})"
        if name in names:
            raise SuiteError(f"{where}: duplicate run name {name!r}")
        names.add(name)
        try:
            algorithm = registry.algorithm(str(entry["algorithm"]))
        except Exception as error:
            raise SuiteError(f"{where}: {error}") from None
        if not algorithm.trains_policy:
            raise SuiteError(f"{where}: {algorithm.name!r} trains no policy, so it has no row to compare")
        base = {**_check_settings(f"{path}: common", algorithm, common, "common"),
                **_check_settings(where, algorithm, entry.get("settings") or {}, "settings")}
        sweep = entry.get("sweep") or {}
        if not isinstance(sweep, dict) or not all(isinstance(v, list) and v for v in sweep.values()):
            raise SuiteError(f"{where}: sweep must map setting names to non-empty lists of values")
        sweep = {k: [_check_settings(where, algorithm, {k: v}, "sweep")[k.replace('-', '_')] for v in values]
                 for k, values in sweep.items()}
        run_seeds = _check_seeds(where, entry.get("seeds", seeds))
        keys = [k.replace("-", "_") for k in sweep]
        for point in itertools.product(*sweep.values()) if sweep else [()]:
            sweep_point = dict(zip(keys, point))
            group = name + "".join(f"-{k}{_label(v)}" for k, v in sweep_point.items())
            settings = {**base, **sweep_point}
            try:
                algorithm.config_class(**settings)
            except (ConfigError, TypeError) as error:
                raise SuiteError(f"{where}: {error}") from None
            for index, seed in enumerate(run_seeds):
                given = settings if "tensor_memory" in settings else \
                    {**settings, "tensor_memory": "on" if index == 0 else "off"}
                resolved = algorithm.config_class(**given, seed=seed)
                specs.append(RunSpec(f"{group}-seed{seed}", group, name, algorithm.name, seed, given, sweep_point,
                                     config_mod.to_dict(resolved), config_mod.settings_fingerprint(resolved)))
    if "shared_reward_model" in data:
        specs = _share_reward_models(path, data["shared_reward_model"], common, specs, registry)
    _check_ids(path, specs)
    suite_name = data.get("name", path.stem)
    if not is_safe_name(suite_name):
        raise SuiteError(f"{path}: suite name {suite_name!r} is not allowed: it names the default output directory "
                         f"bench-runs/<name>, so use letters, digits, '.', '_', '+' and '-'")
    return Suite(suite_name, str(data.get("description", "")), path, specs,
                 _check_budgets(path, data.get("kl_budgets", list(Suite.kl_budgets))))


def _check_budgets(path: Path, budgets) -> tuple[float, ...]:
    if not (isinstance(budgets, list) and budgets and all(isinstance(b, (int, float)) and not isinstance(b, bool)
                                                         and b > 0 for b in budgets)):
        raise SuiteError(f"{path}: kl_budgets must be a non-empty list of positive numbers, got {budgets!r}")
    return tuple(sorted({float(b) for b in budgets}))


def _share_reward_models(path: Path, given, common: dict, specs: list[RunSpec], registry) -> list[RunSpec]:
    """One reward model per seed (an `aligner run reward` run, first in the suite), used by every run that would
    otherwise train its own: a setting `reward_model` that is unset while `reward` is "model". `given`: the reward
    run's settings (steps, learning rate, ...); common settings that the reward algorithm has apply to it too."""
    where = f"{path}: shared_reward_model"
    if not isinstance(given, dict):
        raise SuiteError(f"{where}: expected a mapping of the reward model's settings (e.g. max_steps: 200)")
    reward = registry.algorithm("reward")
    fields = {f.name for f in dataclasses.fields(reward.config_class)}
    settings = {**_check_settings(where, reward, {k: v for k, v in common.items()
                                                  if str(k).replace("-", "_") in fields}, "common"),
                **_check_settings(where, reward, given, "settings")}
    shared, users = {}, []
    for spec in specs:
        if "reward_model" in spec.resolved and "model" in (spec.resolved.get("reward") or []) \
                and spec.resolved.get("reward_model") is None:
            shared.setdefault(spec.seed, None)
            users.append(spec)
    out = []
    for seed in sorted(shared):
        given_seed = {**settings, "tensor_memory": settings.get("tensor_memory", "off")}
        resolved = reward.config_class(**given_seed, seed=seed)
        out.append(RunSpec(f"reward-model-seed{seed}", "reward-model", "reward-model", reward.name, seed, given_seed,
                           {}, config_mod.to_dict(resolved), config_mod.settings_fingerprint(resolved)))
    for spec in specs:
        if spec in users:
            algorithm = registry.algorithm(spec.algorithm)
            settings_ = {**spec.settings, "reward_model": f"{SHARED}reward-model-seed{spec.seed}"}
            resolved = algorithm.config_class(**settings_, seed=spec.seed)
            spec = dataclasses.replace(spec, settings=settings_, resolved=config_mod.to_dict(resolved),
                                       fingerprint=config_mod.settings_fingerprint(resolved))
        out.append(spec)
    return out


def check_common_is_shared(suite: Suite) -> None:
    """Every run must train from the same base on the same data and be evaluated alike."""
    shared = ("model", "dataset", "dataset_config", "dataset_split", "columns", "max_samples", "eval_dataset",
              "eval_split", "eval_prompts", "gold_reward", "eval_max_new_tokens", "eval_temperature")
    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for key in shared:
        values = {repr(spec.settings.get(key, defaults[key])) for spec in suite.runs}
        if len(values) > 1:
            raise SuiteError(f"{suite.path}: {key} differs between runs ({', '.join(sorted(values))}); set it "
                             f"under common so every run shares it")
