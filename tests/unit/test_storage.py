"""Storage faults (aligner.harness.storage) and what the writers leave when one hits them: checkpoints and state
files written whole or not at all, atomic JSON, bounded checkpoints (--save-limit), and the room estimate checked
against peft's own adapter."""

from __future__ import annotations

import errno

import pytest
import torch
from safetensors import SafetensorError

from aligner.harness import rundir, storage
from aligner.training.checkpoints import prune_checkpoints, save_state, state_exists, write_checkpoint


def full_disk(*_args, **_kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_fault_finds_oserrors_safetensors_errors_and_their_causes():
    assert storage.fault(OSError(errno.ENOSPC, "No space left on device")).errno == errno.ENOSPC
    assert storage.fault(OSError(errno.ENOENT, "No such file")) is None  # a missing file is not a storage fault
    rust = SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert storage.fault(rust).errno == errno.ENOSPC
    assert storage.fault(SafetensorError("Error while deserializing header: HeaderTooLarge")) is None
    try:
        try:
            raise OSError(errno.EROFS, "Read-only file system", "/cache/x")
        except OSError as inner:
            raise RuntimeError("a library wrapped it") from inner
    except RuntimeError as outer:
        assert storage.describe(storage.fault(outer)) == "/cache/x: Read-only file system (EROFS)"


def test_writing_names_the_file_a_safetensors_error_does_not(tmp_path):
    with pytest.raises(OSError) as raised:
        with storage.writing(tmp_path / "adapter_model.safetensors"):
            raise SafetensorError("Error while serializing: I/O error: Input/output error (os error 5)")
    assert storage.describe(raised.value) == f"{tmp_path / 'adapter_model.safetensors'}: Input/output error (EIO)"


def test_a_checkpoint_that_fails_half_way_leaves_nothing_and_the_previous_one_intact(tmp_path, monkeypatch):
    state = {"step": 1, "weights": torch.ones(3), "settings": {}, "kind": "offline"}
    write_checkpoint(tmp_path, 1, lambda folder: (folder / "policy").mkdir(), state)

    def half(folder):
        (folder / "policy").mkdir()
        (folder / "policy" / "adapter_model.safetensors").write_bytes(b"partial")
        full_disk()

    with pytest.raises(OSError):
        write_checkpoint(tmp_path, 2, half, {**state, "step": 2})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-000001"]
    assert state_exists(tmp_path / "step-000001", "state")

    import aligner.training.checkpoints as checkpoints

    monkeypatch.setattr(checkpoints, "save_file", lambda *a, **k: (_ for _ in ()).throw(
        SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")))
    with pytest.raises(OSError) as raised:
        save_state(tmp_path / "step-000001", "other", state)
    assert raised.value.filename == str(tmp_path / "step-000001" / ".other.safetensors.tmp")
    assert sorted(p.name for p in (tmp_path / "step-000001").iterdir()) == ["policy", "state.json", "state.safetensors"]


def test_write_json_keeps_the_old_file_when_the_new_one_cannot_be_written(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    rundir.write_json(path, {"a": 1})
    monkeypatch.setattr(type(path), "write_text", lambda self, text: (self.open("w").write(text[:3]), full_disk()))
    with pytest.raises(OSError):
        rundir.write_json(path, {"a": 2})
    monkeypatch.undo()
    assert path.read_text() == '{\n  "a": 1\n}\n' and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def make_checkpoints(directory, steps):
    for step in steps:
        write_checkpoint(directory, step, lambda folder: None, {"step": step, "settings": {}, "kind": "offline"})


def test_save_limit_keeps_the_newest_and_the_best(tmp_path):
    make_checkpoints(tmp_path, [2, 4, 6, 8, 10])
    (tmp_path / ".step-000012.tmp").mkdir()  # a write in progress is neither counted nor removed
    removed = prune_checkpoints(tmp_path, 2, {4})
    assert [p.name for p in removed] == ["step-000002", "step-000006"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".step-000012.tmp", "step-000004", "step-000008",
                                                          "step-000010"]
    assert prune_checkpoints(tmp_path, 0, set()) == [] and len(list(tmp_path.glob("step-*"))) == 3
    assert prune_checkpoints(tmp_path, 5, {None}) == []


def test_checks_before_training_refuse_with_the_location_and_the_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda path: type("usage", (), {"free": 3 * 2**20})())
    storage.check_room(tmp_path / "not-yet" / "out", 2 * 2**20, "--output-dir", "the adapter")
    with pytest.raises(storage.StorageCheckError) as refused:
        storage.check_room(tmp_path, 5 * 2**20, "--output-dir", "the adapter and its first checkpoint")
    assert str(refused.value) == (f"--output-dir {tmp_path}: 3.0 MB free, but the run will write at least 5.0 MB "
                                  f"there (the adapter and its first checkpoint); free space or choose another "
                                  f"location")
    assert refused.value.exit_code == 2
    storage.check_writable(tmp_path / "new" / "cache", "ALIGNER_CACHE")
    assert list((tmp_path / "new" / "cache").iterdir()) == []
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(storage.StorageCheckError, match=rf"^ALIGNER_CACHE {blocker}/sub: not writable \("):
        storage.check_writable(blocker / "sub", "ALIGNER_CACHE")


@pytest.mark.parametrize("targets", [["q_proj", "v_proj"], ["all-linear"]])
def test_lora_bytes_is_what_peft_creates(targets):
    from peft import get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    from aligner.modeling.base import lora_config
    from aligner.offline.settings import OfflineSettings

    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    lora = lora_config(OfflineSettings(lora_r=4, lora_target_modules=targets))
    expected = storage.lora_bytes(model, lora)
    peft_model = get_peft_model(model, lora)
    created = sum(p.numel() * p.element_size() for n, p in peft_model.named_parameters() if "lora_" in n)
    assert expected == created > 0
