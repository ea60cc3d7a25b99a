"""SimPO (Meng et al. 2024): reference-free, length-normalised preference optimisation with a target margin,
written only against aligner's public API, as a third-party plugin would be."""

from dataclasses import dataclass

from aligner import Algorithm, RunConfig, hookimpl, setting


@dataclass
class SimPOSettings(RunConfig):
    """SimPO on a LoRA adapter: -log sigmoid(beta * (mean log p(chosen) - mean log p(rejected)) - gamma)."""

    beta: float = setting(2.0, "Scale of the length-normalised log-likelihood margin.")
    gamma: float = setting(0.5, "Target reward margin.")
    learning_rate: float = setting(1e-3, "Optimizer learning rate.")
    max_steps: int = setting(200, "Optimizer steps to train for.")


def train(context):
    import torch.nn.functional as F
    from peft import get_peft_model

    from aligner.api import adapter_parameters, encode_pairs, lora_config, optimize, pair_batches, sequence_logprobs

    cfg = context.config
    model = get_peft_model(context.base_model, lora_config(cfg))

    def loss(rows):
        pairs = encode_pairs(context.tokenizer, rows, cfg.max_length, context.placement.device)
        margin = (sequence_logprobs(model, pairs.chosen, average=True)
                  - sequence_logprobs(model, pairs.rejected, average=True))
        return -F.logsigmoid(cfg.beta * margin - cfg.gamma).mean(), {
            "rewards/margins": cfg.beta * margin.mean().item(), "rewards/accuracies": (margin > 0).float().mean().item(),
            "tokens": pairs.chosen.attention_mask.sum().item() + pairs.rejected.attention_mask.sum().item()}

    optimize(context, model, adapter_parameters(model, "default"), loss,
             pair_batches(context.train_dataset, cfg.batch_size, cfg.seed),
             steps=cfg.max_steps, learning_rate=cfg.learning_rate, desc="simpo")
    return model


@hookimpl
def register_algorithms(register):
    register(Algorithm(name="simpo", description="SimPO: reference-free, length-normalised preference optimisation",
                       config_class=SimPOSettings, train=train))
