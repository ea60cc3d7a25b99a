"""aligner.harness.memory's tensor counter against counts made by hand."""

from __future__ import annotations

import torch

from aligner.harness.memory import CPU_AUTO_PARAMETERS, StorageCounter, TensorMemory, counts

F32 = 4


def test_storages_are_counted_once_and_freed_ones_leave_the_count():
    kept = torch.zeros(1000)  # alive before counting starts: part of the peak
    with TensorMemory("cpu") as memory:
        counter = memory.counter
        start = counter.current
        a = torch.ones(256, 1024)                   # 1 MiB
        view = a[:, :10].t()                        # a view: no new storage
        a.mul_(2)                                   # in place: no new storage
        b = torch.ones(512, 1024)                   # 2 MiB
        del a, view
        c = torch.ones(128, 1024)                   # 0.5 MiB, allocated after a is freed
        assert counter.current - start == (512 + 128) * 1024 * F32
        del b, c
        assert counter.current == start
    assert memory.peak_bytes - start == 3 * 2**20
    assert memory.start_bytes == start >= kept.numel() * F32


def test_a_training_step_matches_the_hand_count():
    """Two linear layers, ReLU and a squared-mean loss; batch B, widths D -> H -> D, no biases.

    After the forward pass autograd holds the ReLU output (B x H, its backward reads it) and the second layer's
    output (B x D, read by pow's backward), plus the scalar loss. The peak comes in the backward pass, at the
    ReLU: its output, the gradient flowing into it and the gradient it produces (3 x B x H) are alive together
    with the second layer's weight gradient (D x H), the loss and the loss's seed gradient (two scalars). After
    the step the gradients (2 x D x H) and AdamW's two moments per weight (4 x D x H) remain, with one step
    counter per weight (2 scalars)."""
    torch.manual_seed(0)
    B, D, H = 1024, 128, 512
    net = torch.nn.Sequential(torch.nn.Linear(D, H, bias=False), torch.nn.ReLU(), torch.nn.Linear(H, D, bias=False))
    x = torch.randn(B, D)
    optimizer = torch.optim.AdamW(net.parameters(), foreach=False)
    with TensorMemory("cpu") as memory:
        counter = memory.counter
        weights = counter.current
        loss = net(x).pow(2).mean()
        assert counter.current - weights == (B * H + B * D + 1) * F32
        loss.backward()
        assert counter.peak - weights == (3 * B * H + D * H + 2) * F32
        optimizer.step()
        del loss
        assert counter.current - weights == (2 * D * H + 4 * D * H + 2) * F32
    assert memory.peak_bytes == weights + (3 * B * H + D * H + 2) * F32
    assert weights >= 2 * D * H * F32 + B * D * F32


def test_an_excluded_stretch_leaves_the_peak_as_it_was():
    """An evaluation inside training (an evaluation point) must not raise the training's peak."""
    with TensorMemory("cpu") as memory:
        start = memory.counter.current
        a = torch.ones(256, 1024)                   # 1 MiB
        with memory.excluded():
            big = torch.ones(1024, 1024)            # 4 MiB, freed inside the stretch
            kept = torch.ones(128, 1024)            # 0.5 MiB, still alive after it
            del big
        b = torch.ones(256, 1024)                   # 1 MiB more: 2.5 MiB alive at the end
        del a, b, kept
    assert memory.peak_bytes - start == int(2.5 * 2**20)


def test_the_counter_sees_only_its_device_type():
    counter = StorageCounter("cuda")
    with counter:
        torch.ones(1000)
    assert counter.peak == 0 and counter.current == 0


def test_auto_counts_on_cuda_and_for_large_bases_on_cpu():
    small, large = torch.nn.Linear(10, 10), torch.nn.Linear(1, 1)
    large.weight = torch.nn.Parameter(torch.empty(CPU_AUTO_PARAMETERS, 1, device="meta"))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert not counts("auto", cpu, small) and counts("auto", cpu, large) and counts("auto", cuda, small)
    assert counts("on", cpu, small) and not counts("off", cuda, large)
