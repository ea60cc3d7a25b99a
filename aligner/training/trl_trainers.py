"""What the TRL-based plugins share: translating aligner's settings into TRL's, and routing TRL's logs into the
run's metrics.jsonl."""

from __future__ import annotations

import torch
from transformers import TrainerCallback

from aligner.harness import stopping
from aligner.parallel import sharding


class MetricsCallback(TrainerCallback):
    def __init__(self, log_metrics):
        self._log = log_metrics

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs:
            self._log(state.global_step, {k: v for k, v in logs.items() if isinstance(v, (int, float))})


class StopCallback(TrainerCallback):
    """Ends TRL's training loop at the step boundary after a stop signal (`aligner.harness.stopping`); TRL's runs
    save no checkpoint (save_strategy "no"), so such a run keeps nothing."""

    def __init__(self):
        self.signal, self.step = None, 0

    def on_step_end(self, args, state, control, **kwargs):
        self.signal, self.step = stopping.requested(), state.global_step
        if self.signal:
            control.should_training_stop = True


def scratch_dir() -> str:
    """A throw-away folder for the `output_dir` TRL requires, removed at exit."""
    import atexit
    import shutil
    import tempfile

    from aligner.harness.storage import StorageCheckError

    try:
        path = tempfile.mkdtemp(prefix="aligner-trl-")
    except OSError as error:
        raise StorageCheckError(f"TMPDIR {tempfile.gettempdir()}: not writable ({error.strerror}); TRL's trainers "
                                f"need a scratch folder there, so point TMPDIR at a writable one") from None
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def training_arguments(context) -> dict:
    """Keyword arguments every TRL config takes, from aligner's RunConfig."""
    cfg = context.config
    return dict(
        output_dir=scratch_dir(),  # TRL saves nothing (save_strategy "no"); the run directory stays aligner's
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=getattr(cfg, "lr_scheduler", "linear"),  # aligner's offline settings name TRL's default
        max_grad_norm=getattr(cfg, "max_grad_norm", 1.0),
        max_steps=cfg.max_steps,
        max_length=cfg.max_length,
        logging_steps=1,
        save_strategy="no",
        report_to=[],  # the runner sends metrics to --report-to's tracker (aligner.harness.tracking), for every algorithm
        seed=cfg.seed,
        data_seed=cfg.seed,
        use_cpu=context.placement.device.type == "cpu",
        bf16=context.placement.dtype == torch.bfloat16,
        dataloader_num_workers=0,
        disable_dropout=True,
        **checkpointing_arguments(cfg.gradient_checkpointing),
    )


def checkpointing_arguments(enabled: bool) -> dict:
    """Always explicit, because TRL's DPO and ORPO configs default to checkpointing on; transformers 5.24 renamed
    gradient_checkpointing to activation_checkpointing, and earlier 5.x releases have the old name only."""
    import dataclasses

    from transformers import TrainingArguments

    prefix = "activation" if "activation_checkpointing" in {f.name for f in dataclasses.fields(TrainingArguments)} \
        else "gradient"
    return {f"{prefix}_checkpointing": enabled, f"{prefix}_checkpointing_kwargs": {"use_reentrant": False}}


class QuietProgress(TrainerCallback):
    """A progress bar with the latest loss, instead of transformers' bar that prints every log dict."""

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=state.max_steps, desc="training", dynamic_ncols=True)

    def on_step_end(self, args, state, control, **kwargs):
        self._bar.update(state.global_step - self._bar.n)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self._bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_train_end(self, args, state, control, **kwargs):
        self._bar.close()


def quiet_progress(trainer) -> None:
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(ProgressCallback)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(QuietProgress())


def train_with_trl(trainer_class, args, context):
    """Hands the frozen base and a LoRA config to a TRL trainer, which wraps the base once; with no `ref_model`,
    TRL computes reference log-probs with the adapter disabled, so the base weights exist once."""
    from aligner.modeling.base import lora_config

    names = context.train_dataset.column_names
    core = [c for c in ("prompt", "chosen", "rejected", "completion", "label") if c in names]
    trainer = trainer_class(
        model=context.base_model,
        args=args,
        train_dataset=context.train_dataset.select_columns(core),  # TRL reads its own columns; extras stay out
        processing_class=context.tokenizer,
        peft_config=lora_config(context.config),
        callbacks=[MetricsCallback(context.log_metrics), stopper := StopCallback()],
    )
    quiet_progress(trainer)
    counted = count_pair_tokens(trainer)
    with stopping.loop():
        trainer.train()
    if stopper.signal:
        raise stopping.stop(stopper.signal, stopper.step)
    if counted["tokens"]:  # trainers that log no num_tokens of their own (ORPO)
        context.summary_extras.setdefault("trained_tokens", counted["tokens"])
    sharding.gather_full_weights(trainer.model)  # under FSDP2, the main process then evaluates and saves alone
    return trainer.model


def count_pair_tokens(trainer) -> dict:
    """Counts the chosen and rejected tokens of every training batch of trainers that tokenize pairs into
    `chosen_attention_mask` / `rejected_attention_mask` (TRL's ORPO), whose logs carry no `num_tokens`."""
    counted = {"tokens": 0}
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        counted["tokens"] += sum(int(batch[key].sum()) for key in ("chosen_attention_mask", "rejected_attention_mask")
                                 if key in batch)
        return batch

    trainer.data_collator = counting
    return counted
