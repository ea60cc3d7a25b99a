"""Peak memory, measured the same way for every algorithm: the process's peak (`peak_memory_mb`), and the peak
bytes of live tensors (`TensorMemory`), counted the same way on every device, so a CPU run and a GPU run of the
same training report comparable memory.

On CUDA the caching allocator already counts this (`torch.cuda.max_memory_allocated`). On CPU nothing does, and the
process's resident set is dominated by Python and the libraries at small model sizes, so it hides the
activations that decide whether a real model fits. `TensorMemory` counts tensor storages instead: a dispatch mode
sees every tensor an operator returns (forward, backward and optimizer alike), each storage is counted once however
many views share it, and a weak reference takes it off the count when it is freed. Tensors that already exist when
counting starts (the weights) are counted from a scan of the heap. Temporaries an operator allocates and frees
inside its own kernel are invisible to both counts.
"""

from __future__ import annotations

import contextlib
import gc
import resource
import sys
import weakref
from functools import partial

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map_only

_excluded: "weakref.WeakSet[torch.nn.Module]" = weakref.WeakSet()
_active: list["StorageCounter"] = []


def exclude(module: torch.nn.Module) -> None:
    """Leaves `module`'s weights out of every count: a second model (an external reward model) whose memory is
    reported on its own line, never folded into an algorithm's."""
    _excluded.add(module)


@contextlib.contextmanager
def paused():
    """Counts nothing inside the block (the active counter steps aside): what an excluded model allocates."""
    if not _active:
        yield
        return
    counter = _active[-1]
    counter.__exit__(None, None, None)
    try:
        yield
    finally:
        counter.__enter__()


class StorageCounter(TorchDispatchMode):
    """Live and peak bytes of the tensor storages on one device type that this mode has seen."""

    def __init__(self, device_type: str = "cpu"):
        super().__init__()
        self.device_type = device_type
        self.live: dict[int, tuple[weakref.ref, int]] = {}
        self.current = 0
        self.peak = 0

    def count(self, tensor: torch.Tensor) -> None:
        if tensor.device.type != self.device_type or tensor.is_sparse or tensor.is_nested:
            return
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # tensors without a storage of their own
            return
        key, nbytes = storage._cdata, storage.nbytes()
        known = self.live.get(key)
        if known is not None:
            if known[1] != nbytes:  # resized in place
                self.live[key] = (known[0], nbytes)
                self._add(nbytes - known[1])
            return
        self.live[key] = (weakref.ref(storage, partial(self._freed, key)), nbytes)
        self._add(nbytes)

    def count_existing(self) -> None:
        """Counts every tensor the garbage collector can reach: the weights and anything else alive now, but
        the weights of excluded modules."""
        skip = {t.untyped_storage()._cdata for m in list(_excluded) for t in [*m.parameters(), *m.buffers()]}
        for obj in gc.get_objects():
            if issubclass(type(obj), torch.Tensor):  # not isinstance: it would wake deprecated module proxies
                try:
                    if obj.untyped_storage()._cdata in skip:
                        continue
                except (RuntimeError, NotImplementedError):
                    pass
                self.count(obj)

    def _add(self, nbytes: int) -> None:
        self.current += nbytes
        self.peak = max(self.peak, self.current)

    def _freed(self, key: int, ref: weakref.ref) -> None:
        known = self.live.get(key)
        if known is not None and known[0] is ref:
            del self.live[key]
            self.current -= known[1]

    def reset_peak(self) -> None:
        self.peak = self.current

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        # The common cases first, without a tree walk: this runs for every operator of a training run.
        if isinstance(out, torch.Tensor):
            self.count(out)
        elif isinstance(out, (tuple, list)):
            for item in out:
                if isinstance(item, torch.Tensor):
                    self.count(item)
                elif item is not None and not isinstance(item, (int, float, bool)):
                    tree_map_only(torch.Tensor, self.count, item)
        return out


class TensorMemory:
    """`with TensorMemory(device) as memory: ...` then `memory.peak_mb`: the most tensor memory alive at once on
    `device` inside the block, the weights included; `memory.start_bytes`: what was alive when the block began, so
    `peak_bytes - start_bytes` is what the block itself added at its peak."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.counter: StorageCounter | None = None
        self.peak_bytes = 0
        self.start_bytes = 0

    def __enter__(self) -> "TensorMemory":
        gc.collect()  # an earlier run's tensors in reference cycles are garbage, not part of this block's memory
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start_bytes = torch.cuda.memory_allocated(self.device)
        else:
            self.counter = StorageCounter(self.device.type)
            self.counter.count_existing()
            self.start_bytes = self.counter.current
            self.counter.__enter__()
            _active.append(self.counter)
        return self

    def __exit__(self, *exc) -> None:
        if self.counter is not None:
            _active.remove(self.counter)
            self.counter.__exit__(*exc)
            self.peak_bytes = self.counter.peak
        else:
            torch.cuda.synchronize(self.device)
            self.peak_bytes = max(getattr(self, "peak_outside", 0), torch.cuda.max_memory_allocated(self.device))

    @contextlib.contextmanager
    def excluded(self):
        """A stretch whose allocations do not count toward the peak (an evaluation inside training): the peak
        afterwards is the larger of the peak before it and what is alive when it ends."""
        if self.counter is not None:
            before = self.counter.peak
            try:
                yield
            finally:
                gc.collect()  # what the stretch left in reference cycles is garbage, not alive
                self.counter.peak = max(before, self.counter.current)
            return
        if self.device.type != "cuda":
            yield
            return
        torch.cuda.synchronize(self.device)
        self.peak_outside = max(getattr(self, "peak_outside", 0), torch.cuda.max_memory_allocated(self.device))
        try:
            yield
        finally:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / 2**20


CPU_AUTO_PARAMETERS = 100_000_000
"""From this many base parameters, `--tensor-memory auto` counts on CPU too: each operator then takes long enough
that counting it costs little; a small model's time goes to per-operator overhead, which counting adds to
(docs/performance.md has the measured cost)."""


def counts(choice: str, device: torch.device, model: torch.nn.Module) -> bool:
    """Whether a run with `--tensor-memory choice` counts tensor memory."""
    if choice != "auto":
        return choice == "on"
    return device.type == "cuda" or sum(p.numel() for p in model.parameters()) >= CPU_AUTO_PARAMETERS

def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def peak_memory_mb(device: torch.device) -> float:
    """Peak GPU memory allocated (CUDA), or the process's peak resident set size (CPU).

    The CPU figure is the whole process's high-water mark since it started (`ru_maxrss`), so it includes Python,
    torch and the libraries: compare runs made in separate processes.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024
