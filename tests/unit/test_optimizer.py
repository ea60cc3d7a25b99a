"""The engines' AdamW: fused where torch has a kernel for the parameters, the same update as torch's default."""

import torch

from aligner.training.optimizer import adamw, fusable


def test_fused_adamw_takes_the_steps_the_default_one_takes():
    torch.manual_seed(0)
    start = [torch.randn(16, 8), torch.randn(8)]
    trained = []
    for fused in (True, False):
        params = [torch.nn.Parameter(t.clone()) for t in start]
        optimizer = adamw(params, lr=1e-2, eps=1e-5) if fused else torch.optim.AdamW(params, lr=1e-2, eps=1e-5)
        assert optimizer.defaults["fused"] is (True if fused else None)
        for step in range(5):
            for p in params:
                p.grad = torch.sin(p.detach() * (step + 1))
            optimizer.step()
        trained.append(params)
    for fused, default in zip(*trained):
        torch.testing.assert_close(fused, default, atol=1e-6, rtol=1e-6)
        assert not torch.equal(fused, torch.zeros_like(fused))


def test_no_parameters_or_meta_ones_take_the_default_implementation():
    assert fusable([torch.nn.Parameter(torch.zeros(2))])
    assert not fusable([])
    assert not fusable([torch.nn.Parameter(torch.zeros(2, device="meta"))])
