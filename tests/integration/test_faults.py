"""Faults real machines produce, injected into real runs on the toy world: a signal in each phase of a run (the
reward model's training, a rollout, an update, a checkpoint write, an offline step, a bench between runs), a step
that outlasts the grace period, a second signal, a write that fails with ENOSPC or EIO at a chosen file, read-only
caches and a disk without room. Each asserts the one line printed, the exit code, what was kept, and that the kept
state resumes.

Writes fail through `FailingWrites`: a Python audit hook that refuses the chosen `open` for writing (every Python
writer: json, yaml, config and tokenizer files, metrics) and a stand-in for safetensors' writer at the places that
call it (peft's adapters, aligner's state files and heads) that raises what safetensors raises on a full disk."""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors import SafetensorError

from aligner.cli import main
from aligner.harness import stopping, storage

TINY_PPO = ["--reward", "gold", "--prompts-per-step", "8", "--batch-size", "8", "--response-length", "8",
            "--eval-prompts", "4", "--eval-max-new-tokens", "4"]
TINY_DPO = ["--batch-size", "8", "--eval-prompts", "4", "--eval-max-new-tokens", "4"]


def aligner_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines()
            if line.startswith("aligner:") and not line.startswith("aligner: data:")]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err[-3000:]
    lines = aligner_lines(err)
    assert len(lines) == 1, lines
    return lines[0]


def leftovers(root: Path) -> list[str]:
    """Half-written files or folders anywhere under `root`."""
    return [str(p) for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp" in p.name.split(".")]


def signal_on_call(monkeypatch, module, name: str, signum: int, at_call: int, then=None) -> None:
    """Sends `signum` to this process when `module.name` is called the `at_call`-th time, then calls `then` (the
    phase going on after the signal) and the original."""
    original, calls = getattr(module, name), {"n": 0}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == at_call:
            os.kill(os.getpid(), signum)
            if then is not None:
                then()
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def continue_with(line: str) -> int:
    """Runs the command a stopped run printed (`continue it with `aligner ...``)."""
    command = line.split("continue it with `", 1)[1].split("`", 1)[0]
    words = shlex.split(command)
    assert words[0] == "aligner"
    return main(words[1:])


def partial(tmp_path: Path) -> Path:
    found = list(tmp_path.glob(".out.partial-*"))
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------------------------------- signals


@pytest.mark.parametrize("function, at_call, stopped_at", [
    ("generate", 2, 2),  # the rollout of iteration 2
    ("update", 2, 2),  # its update
    ("write_checkpoint", 1, 3),  # iteration 2's checkpoint: the write completes, and iteration 3 ends the run
])
def test_sigterm_in_an_online_phase_stops_at_the_step_boundary_and_resumes(function, at_call, stopped_at, tmp_path,
                                                                            capsys, monkeypatch, toy_world):
    from aligner.online import engine

    out = tmp_path / "out"
    signal_on_call(monkeypatch, engine, function, signal.SIGTERM, at_call)
    argv = ["run", "ppo", *TINY_PPO, "--max-steps", "4", "--save-every", "2", "--output-dir", str(out)]
    assert main(argv) == 143
    line = one_line(capsys)
    staging = partial(tmp_path)
    assert line.startswith(f"aligner: stopped by SIGTERM at step {stopped_at}; its checkpoints (the last "
                           f"step-{stopped_at:06d}) are kept in {staging} (not published to {out}): continue it with "
                           f"`aligner run ppo ")
    assert sorted(p.name for p in (staging / "checkpoints").iterdir()) == \
        sorted({"step-000002", f"step-{stopped_at:06d}"})
    assert leftovers(tmp_path) == [] and not out.exists()
    monkeypatch.undo()
    assert continue_with(line) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == stopped_at
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert not staging.exists(), "the resumed run's staging directory is removed once the run is published"


def test_sigterm_while_the_reward_model_trains_keeps_nothing(tmp_path, capsys, monkeypatch, toy_world):
    from aligner.reward import model

    out = tmp_path / "out"
    signal_on_call(monkeypatch, model, "take", signal.SIGTERM, 3)  # the batch of its step 2 (the first call takes
    argv = ["run", "ppo", *TINY_PPO, "--reward", "model", "--reward-model-steps", "20", "--max-steps", "2",  # its
            "--output-dir", str(out)]  # held-out pairs)
    assert main(argv) == 143
    assert one_line(capsys) == (f"aligner: stopped by SIGTERM at step 2; nothing was written to {out} (the partial "
                                f"output held no checkpoint and was removed)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("signum, code, word", [(signal.SIGHUP, 129, "stopped by SIGHUP"),
                                                (signal.SIGINT, 130, "interrupted")])
def test_sighup_and_ctrl_c_stop_an_offline_run_the_same_way(signum, code, word, tmp_path, capsys, monkeypatch,
                                                            toy_world):
    from aligner.offline import engine

    out = tmp_path / "out"
    signal_on_call(monkeypatch, engine, "pair_logps", signum, 3)
    assert main(["run", "dpo", *TINY_DPO, "--max-steps", "8", "--save-every", "5", "--output-dir", str(out)]) == code
    line = one_line(capsys)
    assert line.startswith(f"aligner: {word} at step 3; its checkpoints (the last step-000003) are kept in ")
    assert sorted(p.name for p in (partial(tmp_path) / "checkpoints").iterdir()) == ["step-000003"]


def test_a_step_that_outlasts_the_grace_period_is_abandoned(tmp_path, capsys, monkeypatch, toy_world):
    from aligner.offline import engine

    monkeypatch.setenv("ALIGNER_STOP_GRACE", "0.3")
    out = tmp_path / "out"
    signal_on_call(monkeypatch, engine, "pair_logps", signal.SIGTERM, 3, then=lambda: time.sleep(30))
    started = time.monotonic()
    assert main(["run", "dpo", *TINY_DPO, "--max-steps", "8", "--save-every", "2", "--output-dir", str(out)]) == 143
    assert time.monotonic() - started < 25
    line = one_line(capsys)
    assert line.startswith("aligner: stopped by SIGTERM (the step in progress was abandoned: it had not ended 0.3 s "
                           "after the signal); its checkpoints (the last step-000002) are kept in ")
    assert sorted(p.name for p in (partial(tmp_path) / "checkpoints").iterdir()) == ["step-000002"]
    monkeypatch.undo()
    assert continue_with(line) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 2


def test_a_second_signal_stops_at_once(tmp_path, capsys, monkeypatch, toy_world):
    from aligner.offline import engine

    monkeypatch.setattr(stopping, "DUPLICATE", 0.0)
    out = tmp_path / "out"
    signal_on_call(monkeypatch, engine, "pair_logps", signal.SIGTERM, 3,
                   then=lambda: (time.sleep(0.05), os.kill(os.getpid(), signal.SIGTERM), time.sleep(0.05)))
    assert main(["run", "dpo", *TINY_DPO, "--max-steps", "8", "--save-every", "2", "--output-dir", str(out)]) == 143
    line = one_line(capsys)
    assert line.startswith("aligner: stopped by SIGTERM; its checkpoints (the last step-000002) are kept in ")
    assert leftovers(tmp_path) == []


def test_sigterm_while_the_toy_world_is_built_leaves_the_cache_clean(tmp_path, capsys, monkeypatch):
    from aligner.toy import world

    cache = tmp_path / "cache"
    monkeypatch.setenv("ALIGNER_CACHE", str(cache))
    signal_on_call(monkeypatch, world, "pretrain", signal.SIGTERM, 1)
    out = tmp_path / "runs" / "out"
    assert main(["run", "dpo", "--output-dir", str(out)]) == 143
    assert one_line(capsys) == (f"aligner: stopped by SIGTERM; nothing was written to {out} (the partial output "
                                f"held no checkpoint and was removed)")
    assert [p.name for p in cache.iterdir()] == [f".toy-{world.WORLD_VERSION}-seed0.lock"]
    assert list((tmp_path / "runs").iterdir()) == []


def test_sigterm_between_a_suites_runs(tmp_path, capsys, monkeypatch, toy_world):
    from aligner.bench import execute

    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"common": {"eval_prompts": 4, "eval_max_new_tokens": 4}, "runs": [
        {"name": "first", "algorithm": "base"}, {"name": "second", "algorithm": "base"}]}))
    out = tmp_path / "out"
    signal_on_call(monkeypatch, execute, "changes_since", signal.SIGTERM, 2)
    assert main(["bench", str(suite), "--output-dir", str(out)]) == 143
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert aligner_lines(err) == [f"aligner: stopped by SIGTERM during run second-seed0; 1 finished run(s) of 2 are "
                                  f"kept in {out}, and the same command continues with the rest"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["first-seed0"]
    monkeypatch.undo()
    assert main(["bench", str(suite), "--output-dir", str(out)]) == 0
    assert "first-seed0: finished earlier, kept" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------------- storage


class FailingWrites:
    """Fails the `nth` write (1 = the first) whose path contains `match` with `error` (an errno), or with `nth`
    None every such write, as a read-only filesystem does. `failed` is the first path failed."""

    active: "FailingWrites | None" = None
    _hooked = False

    def __init__(self, error: int, match: str, nth: int | None = 1):
        self.error, self.match, self.nth, self.seen, self.failed = error, match, nth, 0, None

    def hit(self, path) -> bool:
        if self.match not in str(path) or (self.nth is not None and self.failed is not None):
            return False
        self.seen += 1
        if self.nth is None or self.seen == self.nth:
            self.failed = self.failed or str(path)
            return True
        return False

    @classmethod
    def audit(cls, event, args):
        injector = cls.active
        if injector is None or event != "open":
            return
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or \
            (mode is None and isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writes and isinstance(path, (str, Path)) and injector.hit(path):
            raise OSError(injector.error, os.strerror(injector.error), str(path))


@pytest.fixture
def failing_writes(monkeypatch):
    import peft.peft_model

    import aligner.modeling.heads
    import aligner.training.checkpoints

    if not FailingWrites._hooked:
        sys.addaudithook(FailingWrites.audit)  # audit hooks cannot be removed: it acts only while one is armed
        FailingWrites._hooked = True

    for module, name in ((peft.peft_model, "safe_save_file"), (aligner.training.checkpoints, "save_file"),
                         (aligner.modeling.heads, "save_file")):
        original = getattr(module, name)

        def safetensors_writer(tensors, filename, *args, _original=original, **kwargs):
            injector = FailingWrites.active
            if injector is not None and injector.hit(filename):
                raise SafetensorError(f"Error while serializing: I/O error: {os.strerror(injector.error)} "
                                      f"(os error {injector.error})")
            return _original(tensors, filename, *args, **kwargs)

        monkeypatch.setattr(module, name, safetensors_writer)

    def arm(error: int, match: str, nth: int | None = 1) -> FailingWrites:
        FailingWrites.active = FailingWrites(error, match, nth)
        return FailingWrites.active

    yield arm
    FailingWrites.active = None


@pytest.mark.parametrize("match, nth, what", [
    ("step-000004", 1, "the second checkpoint's adapter"),
    ("state.json.tmp", 2, "the second checkpoint's state.json"),
    ("metrics.jsonl", 1, "the metrics log"),
])
def test_a_full_disk_while_training_keeps_the_last_good_checkpoint(match, nth, what, tmp_path, capsys,
                                                                   failing_writes, toy_world):
    out = tmp_path / "out"
    injector = failing_writes(errno.ENOSPC, match, nth)
    argv = ["run", "dpo", *TINY_DPO, "--max-steps", "6", "--save-every", "2", "--output-dir", str(out)]
    assert main(argv) == 1
    line = one_line(capsys)
    assert injector.failed is not None, what
    assert line.startswith(f"aligner: error: could not write {injector.failed}: No space left on device (ENOSPC); "
                           f"the run stopped; ")
    assert leftovers(tmp_path) == [] and not out.exists()
    if match == "metrics.jsonl":  # before any checkpoint: nothing to keep
        assert line.endswith(f"nothing was written to {out} (the partial output held no checkpoint and was removed)")
        assert list(tmp_path.iterdir()) == []
        return
    assert sorted(p.name for p in (partial(tmp_path) / "checkpoints").iterdir()) == ["step-000002"]
    FailingWrites.active = None
    assert continue_with(line) == 0
    assert json.loads((out / "summary.json").read_text())["resumed_from_step"] == 2


def test_a_run_that_trained_but_could_not_be_saved_says_how_much_room_it_needs(tmp_path, capsys, failing_writes,
                                                                               toy_world):
    out = tmp_path / "out"
    injector = failing_writes(errno.ENOSPC, f"{os.sep}.adapter.tmp{os.sep}adapter_model.safetensors")
    assert main(["run", "dpo", *TINY_DPO, "--max-steps", "4", "--save-every", "2", "--output-dir", str(out)]) == 1
    line = one_line(capsys)
    staging = partial(tmp_path)
    adapter_mb = storage.megabytes(storage.size_of(staging / "checkpoints" / "step-000004" / "policy"))
    assert line.startswith(f"aligner: error: training finished, but saving the run failed: {injector.failed}: No "
                           f"space left on device (ENOSPC) (the adapter alone needs {adapter_mb}; ")
    assert f"its checkpoints (the last step-000004) are kept in {staging}" in line
    assert leftovers(tmp_path) == [] and not (staging / "adapter").exists()
    FailingWrites.active = None
    assert continue_with(line) == 0  # evaluates and saves what was trained, training nothing again
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed_from_step"] == 4
    assert [json.loads(r)["step"] for r in (out / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3, 4]


def test_an_io_error_writing_the_bench_results_names_the_file_and_keeps_the_runs(tmp_path, capsys, failing_writes,
                                                                                  toy_world):
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"common": {"eval_prompts": 4, "eval_max_new_tokens": 4},
                                     "runs": [{"name": "only", "algorithm": "base"}]}))
    out = tmp_path / "out"
    injector = failing_writes(errno.EIO, "results.md")
    assert main(["bench", str(suite), "--output-dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert aligner_lines(err) == [f"aligner: error: could not write {injector.failed}: Input/output error (EIO)"]
    assert (out / "runs" / "only-seed0" / "summary.json").is_file() and leftovers(out) == []
    FailingWrites.active = None
    assert main(["bench", "report", str(out)]) == 0
    assert (out / "results.md").is_file()


def test_a_read_only_toy_world_cache_is_refused_before_anything_runs(tmp_path, capsys, failing_writes, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("ALIGNER_CACHE", str(cache))
    failing_writes(errno.EROFS, str(cache), nth=None)
    out = tmp_path / "runs" / "out"
    assert main(["run", "dpo", "--output-dir", str(out)]) == 2
    assert one_line(capsys) == (f"aligner: error: ALIGNER_CACHE {cache}: not writable (Read-only file system); "
                                f"choose a writable location")
    assert list((tmp_path / "runs").iterdir()) == []


def test_a_full_disk_while_the_toy_world_is_built_leaves_the_cache_clean(tmp_path, capsys, failing_writes,
                                                                         monkeypatch):
    from aligner.toy import world

    cache = tmp_path / "cache"
    monkeypatch.setenv("ALIGNER_CACHE", str(cache))
    monkeypatch.setattr(world, "pretrain", lambda model, tokenizer, texts, seed: [0.0] * 20)  # the write is the test
    injector = failing_writes(errno.ENOSPC, f"{cache}{os.sep}toy-")  # the world's files, built in a temp folder
    assert main(["run", "dpo", "--output-dir", str(tmp_path / "out")]) == 1
    line = one_line(capsys)
    assert injector.failed is not None
    assert line.startswith(f"aligner: error: could not write {injector.failed}: No space left on device (ENOSPC); ")
    assert [p.name for p in cache.iterdir() if not p.name.endswith(".lock")] == []


def test_a_read_only_datasets_cache_is_refused_naming_it(tmp_path, capsys, failing_writes, monkeypatch, toy_world):
    import datasets

    rows = tmp_path / "pairs.jsonl"
    rows.write_text("".join(json.dumps({"prompt": f"p{i}", "chosen": " good", "rejected": " bad"}) + "\n"
                            for i in range(8)))
    arrow = tmp_path / "arrow"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(arrow))
    failing_writes(errno.EROFS, str(arrow), nth=None)
    assert main(["run", "dpo", "--dataset", str(rows), "--output-dir", str(tmp_path / "out")]) == 2
    assert one_line(capsys) == (f"aligner: error: HF_DATASETS_CACHE {arrow}: not writable (Read-only file system); "
                                f"choose a writable location")


def test_an_output_disk_without_room_is_refused_before_training(tmp_path, capsys, monkeypatch, toy_world):
    monkeypatch.setattr(storage, "free_bytes", lambda path: 1024)
    out = tmp_path / "out"
    assert main(["run", "dpo", *TINY_DPO, "--output-dir", str(out)]) == 2
    line = one_line(capsys)
    assert line.startswith(f"aligner: error: --output-dir {tmp_path}/.out.partial-")
    assert ": 0.0 MB free, but the run will write at least " in line
    assert line.endswith(" there (the adapter and its first checkpoint); free space or choose another location")
    assert list(tmp_path.iterdir()) == []


def small_filesystems_here() -> bool:
    """Whether this machine lets an unprivileged user namespace mount a tmpfs (Linux with user namespaces on)."""
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k none /mnt || mount -t tmpfs -o size=64k none /tmp"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not small_filesystems_here(), reason="no unprivileged tmpfs mounts on this machine")
def test_a_real_full_filesystem(tmp_path, toy_world):
    """Against a real tmpfs of a few MB (not a patched writer): too small for the adapter and first checkpoint, the
    run is refused before training; with room for those but not for later checkpoints, it stops at the failed write
    with the last checkpoint kept, and continues once there is room."""
    mount = tmp_path / "small"
    mount.mkdir()
    argv = ["run", "dpo", *TINY_DPO, "--max-steps", "6", "--save-every", "2", "--output-dir", str(mount / "out")]

    def in_tmpfs(size: str, then: str = "") -> subprocess.CompletedProcess:
        script = (f'mount -t tmpfs -o size={size} none "$1" && shift && "$@"; code=$?; {then} exit $code')
        return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", str(mount),
                               sys.executable, "-m", "aligner", *argv], capture_output=True, text=True, timeout=300)

    refused = in_tmpfs("1m")
    assert refused.returncode == 2, refused.stderr[-3000:]
    (line,) = aligner_lines(refused.stderr)
    assert line.startswith(f"aligner: error: --output-dir {mount}/.out.partial-") and "MB free, but the run will " \
        "write at least" in line and line.endswith("(the adapter and its first checkpoint); free space or choose " \
                                                   "another location")

    # the kept checkpoint is copied out of the namespace's tmpfs before it goes away
    full = in_tmpfs("4m", then=f'cp -r {mount}/.out.partial-* {tmp_path}/ 2>/dev/null;')
    assert full.returncode == 1, full.stderr[-3000:]
    assert "Traceback" not in full.stderr
    (line,) = aligner_lines(full.stderr)
    assert line.startswith(f"aligner: error: could not write {mount}/.out.partial-")
    assert ": No space left on device (ENOSPC); the run stopped; its checkpoints (the last step-00000" in line
    (kept,) = tmp_path.glob(".out.partial-*")
    checkpoints = sorted(p.name for p in (kept / "checkpoints").iterdir())
    assert checkpoints and all(not name.startswith(".") for name in checkpoints), checkpoints
    resumed = subprocess.run([sys.executable, "-m", "aligner", *argv[:-1], str(tmp_path / "out"), "--resume",
                              str(kept)], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["resumed_from_step"] == int(checkpoints[-1][5:])


# ---------------------------------------------------------------------------------------------------- bounded checkpoints


def test_save_limit_keeps_the_last_checkpoints_and_the_best_evaluations(tmp_path, toy_world):
    from aligner.harness import frontier

    first = tmp_path / "first"
    argv = ["run", "dpo", *TINY_DPO, "--max-steps", "6", "--save-every", "1", "--eval-points", "3"]
    assert main([*argv, "--save-limit", "2", "--output-dir", str(first)]) == 0
    points = {row["step"]: row["gold_reward"] for row in frontier.read(first / "evaluations.jsonl")}
    best = max((step for step in points if 0 < step < 6), key=lambda step: points[step])
    kept = sorted(p.name for p in (first / "checkpoints").iterdir())
    assert kept == sorted({f"step-{best:06d}", "step-000005", "step-000006"})

    every = tmp_path / "every"
    assert main([*argv, "--save-limit", "0", "--output-dir", str(every)]) == 0
    assert len(list((every / "checkpoints").iterdir())) == 6
    same = lambda run: json.loads((run / "summary.json").read_text())["settings_fingerprint"]  # noqa: E731
    assert same(first) == same(every), "--save-limit changes no result"
    assert (first / "adapter" / "adapter_model.safetensors").read_bytes() == \
        (every / "adapter" / "adapter_model.safetensors").read_bytes()

    resumed = tmp_path / "resumed"  # and it may change on --resume
    assert main(["run", "dpo", *TINY_DPO, "--max-steps", "8", "--save-every", "1", "--eval-points", "3",
                 "--save-limit", "1", "--resume", str(every), "--output-dir", str(resumed)]) == 0
    assert sorted(p.name for p in (resumed / "checkpoints").iterdir())[-1] == "step-000008"


def test_a_read_only_evaluate_modules_cache_is_refused_naming_it(tmp_path, failing_writes):
    import evaluate.config

    from aligner import plugins
    from aligner.reward import sources

    folder = tmp_path / "fresh_judge"  # a module evaluate has not copied yet this session
    folder.mkdir()
    (folder / "fresh_judge.py").write_text(
        "import datasets\nimport evaluate\n\n\nclass FreshJudge(evaluate.Metric):\n    def _info(self):\n"
        "        return evaluate.MetricInfo(description='', citation='', inputs_description='',\n"
        "                                   features=datasets.Features({'predictions': datasets.Value('string')}))\n\n"
        "    def _compute(self, predictions):\n        return {'scores': [len(p) for p in predictions]}\n")
    failing_writes(errno.EROFS, str(evaluate.config.HF_MODULES_CACHE), nth=None)
    with pytest.raises(storage.StorageCheckError) as refused:
        sources.resolve_reward(f"evaluate:{folder}", plugins.default().registry, "--gold-reward")
    assert str(refused.value).startswith(f"--gold-reward evaluate:{folder}: evaluate copies the module into its "
                                         f"modules cache (HF_MODULES_CACHE), which cannot be written: "
                                         f"{evaluate.config.HF_MODULES_CACHE}")
    assert str(refused.value).endswith(": Read-only file system (EROFS)") and refused.value.exit_code == 2
