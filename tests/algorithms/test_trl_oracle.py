"""aligner's offline engine against TRL's trainers as the oracle: for the same batch, model and adapter weights,
each loss and the gradient of every LoRA weight equal TRL's (DPO's sigmoid and IPO through `DPOTrainer`, KTO with
its KL estimate through `KTOTrainer`, ORPO through `ORPOTrainer`) to float32 rounding."""

from __future__ import annotations

import os
import types

import pytest
import torch
from datasets import Dataset
from peft import LoraConfig

from aligner.offline.logps import example_logps, pair_logps

from helpers import randomize_lora, tiny_llama

PAIRS = [
    {"prompt": "the plot was", "chosen": " great and the acting was good .", "rejected": " bad ."},
    {"prompt": "i think the movie is", "chosen": " wonderful .", "rejected": " boring and far too long ."},
    {"prompt": "the acting", "chosen": " was superb .", "rejected": " was terrible and the plot was dull ."},
    {"prompt": "it is a", "chosen": " good film .", "rejected": " bad film ."},
]
BETA = 0.5
LORA = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")


def trainer_of(trainer_class, config_class, rows, **settings):
    """A TRL trainer on a tiny Llama with a LoRA adapter made non-zero (policy != reference), whole data in one
    batch, dropout off."""
    model, tok = tiny_llama()
    args = config_class(output_dir="/tmp/aligner-oracle", per_device_train_batch_size=len(rows), max_length=64,
                        use_cpu=True, report_to=[], beta=BETA, disable_dropout=True, **settings)
    trainer = trainer_class(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok,
                            peft_config=LORA)
    randomize_lora(trainer.model, scale=3.0)
    trainer.model.eval()
    return trainer, tok


def trl_loss_and_grads(trainer):
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)
    return loss.detach(), take_grads(trainer.model, loss)


def take_grads(model, loss) -> dict:
    params = {n: p for n, p in model.named_parameters() if "lora_" in n}
    for p in params.values():
        p.grad = None
    loss.backward()
    grads = {n: p.grad.clone() for n, p in params.items()}
    assert any(g.abs().sum() > 0 for g in grads.values())
    return grads


def assert_same(trl_result, ours, model):
    (trl_loss, trl_grads), loss = trl_result, ours
    torch.testing.assert_close(loss.detach(), trl_loss, rtol=1e-5, atol=1e-6)
    grads = take_grads(model, loss)
    assert grads.keys() == trl_grads.keys()
    for name in grads:  # float32 rounding, relative to each tensor's scale
        scale = trl_grads[name].abs().max().item()
        assert (grads[name] - trl_grads[name]).abs().max().item() <= 1e-4 * scale + 1e-8, name


@pytest.mark.parametrize("loss_type", ["sigmoid", "hinge"])
def test_dpo_loss_and_gradients_equal_trls(loss_type):
    import trl

    from aligner_dpo.loss import dpo_loss

    trainer, tok = trainer_of(trl.DPOTrainer, trl.DPOConfig, PAIRS, loss_type=[loss_type])
    oracle = trl_loss_and_grads(trainer)
    logps, _ = pair_logps(trainer.model, tok, PAIRS, list(range(len(PAIRS))), 64, "cpu", reference=True)
    loss = dpo_loss(logps.chosen_logratios, logps.rejected_logratios, BETA, loss_type).mean()
    assert abs(loss.item() - (0.6931 if loss_type == "sigmoid" else 1.0)) > 1e-3, "the adapter must move the loss"
    assert_same(oracle, loss, trainer.model)


def test_ipo_loss_and_gradients_equal_trls_length_normalised_ipo():
    import trl

    from aligner_ipo.loss import ipo_loss

    trainer, tok = trainer_of(trl.DPOTrainer, trl.DPOConfig, PAIRS, loss_type=["ipo"])
    oracle = trl_loss_and_grads(trainer)
    logps, _ = pair_logps(trainer.model, tok, PAIRS, list(range(len(PAIRS))), 64, "cpu", reference=True)
    loss = ipo_loss(logps.chosen_logratios / logps.chosen_tokens, logps.rejected_logratios / logps.rejected_tokens,
                    BETA).mean()
    assert_same(oracle, loss, trainer.model)


def test_kto_loss_kl_estimate_and_gradients_equal_trls():
    import trl

    from aligner_kto.loss import kl_estimate, kto_loss

    rows = [{"prompt": p["prompt"], "completion": p[side], "label": side == "chosen"}
            for p in PAIRS for side in ("chosen", "rejected")][:6]
    trainer, tok = trainer_of(trl.KTOTrainer, trl.KTOConfig, rows, desirable_weight=1.0, undesirable_weight=1.5)
    oracle = trl_loss_and_grads(trainer)
    logps, _ = example_logps(trainer.model, tok, rows, 64, "cpu")
    kl = kl_estimate(logps.mismatched, logps.ref_mismatched)
    assert kl.item() > 0, "a clamped-to-zero KL would leave the estimate untested"
    loss = kto_loss(logps.logps - logps.ref_logps, logps.desirable, kl, BETA, 1.0, 1.5)
    assert_same(oracle, loss, trainer.model)
    assert trainer._metrics["eval"]["kl"][-1] == pytest.approx(kl.item(), rel=1e-5)


def test_orpo_loss_and_gradients_equal_trls():
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    import aligner_orpo.train

    trainer, tok = trainer_of(ORPOTrainer, ORPOConfig, PAIRS)
    oracle = trl_loss_and_grads(trainer)
    captured = {}

    def engine(context, loss, *, reference, desc, chosen_sequence):  # the plugin's own loss, on our log-probs
        logps, _ = pair_logps(trainer.model, tok, PAIRS, list(range(len(PAIRS))), 64, "cpu", reference,
                              chosen_sequence)
        captured["loss"] = loss(logps)[0]

    context = types.SimpleNamespace(config=types.SimpleNamespace(implementation="aligner", beta=BETA))
    original = aligner_orpo.train.train_on_pairs
    aligner_orpo.train.train_on_pairs = engine
    try:
        aligner_orpo.train.train(context)
    finally:
        aligner_orpo.train.train_on_pairs = original
    assert_same(oracle, captured["loss"], trainer.model)
