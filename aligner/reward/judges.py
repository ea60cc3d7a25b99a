"""The rewards and the judge of a run, resolved and tried before training: `--gold-reward` (the judge of every
evaluation) and each `--reward` source of an online method. Importable callables and models' configs are checked
before any data loads; models are loaded after the base; then every function is probed once on a few rows (their
chosen or given completions, or short samples from the base), so a reward that raises, returns the wrong number
of scores or a non-finite one stops the run with exit code 2 before the base is evaluated."""

from __future__ import annotations

from aligner.reward import sources
from aligner.reward.scoring import GOLD, MODEL, completions_like, describe

PROBE_ROWS = 4
PROBE_TOKENS = 8


def _reward_specs(cfg) -> list[str]:
    """The `--reward` sources that are functions or models (not aligner's reward model, not the judge's alias)."""
    return [spec for spec in getattr(cfg, "reward", []) if spec not in (MODEL, GOLD)]


def trains_reward_model(cfg) -> bool:
    return MODEL in getattr(cfg, "reward", []) and getattr(cfg, "reward_model", None) is None


def check(cfg, registry) -> None:
    """Before anything loads: the judge and every reward source resolve (no weights are loaded)."""
    sources.resolve_reward(cfg.gold_reward, registry, "--gold-reward", cfg.trust_remote_code, load=False)
    for spec in _reward_specs(cfg):
        sources.resolve_reward(spec, registry, "--reward", cfg.trust_remote_code, load=False)


def load(cfg, registry, where) -> dict[str, sources.RewardSource]:
    """Every source by name, classifiers' weights loaded onto the run's device."""
    named = {cfg.gold_reward: "--gold-reward", **{spec: "--reward" for spec in _reward_specs(cfg)}}
    return {spec: sources.resolve_reward(spec, registry, flag, cfg.trust_remote_code, device=where.device,
                                  dtype=where.dtype) for spec, flag in named.items()}


def _probe_rows(dataset, layout_kind: str, base, tokenizer, seed: int, max_prompt_tokens: int):
    """(prompts, completions, columns) of the first few rows: their chosen or given completion, else a short
    sample from the base."""
    from aligner.modeling.sampling import sample

    rows = dataset.select(range(min(PROBE_ROWS, len(dataset))))[:]
    prompts = rows.pop("prompt")
    answer = {"preference": "chosen", "unpaired": "completion"}.get(layout_kind)
    if answer is not None and answer in rows:
        completions = rows[answer]
    else:
        drawn = sample(base, tokenizer, prompts, max_new_tokens=PROBE_TOKENS, temperature=1.0, seed=seed,
                       max_prompt_tokens=max_prompt_tokens)
        completions = completions_like(prompts, drawn.responses)
    return prompts, completions, rows


def probe(cfg, rewards: dict, run_data, base, tokenizer) -> None:
    """Each source scores a few rows once; a fault is a RewardError (exit 2) naming the source and the row."""
    tried = {cfg.gold_reward: (run_data.eval_rows, "prompt")}
    for spec in _reward_specs(cfg):
        tried[spec] = (run_data.train.dataset, run_data.train.layout.kind)
    for spec, (dataset, kind) in tried.items():
        prompts, completions, columns = _probe_rows(dataset, kind, base, tokenizer, cfg.seed, cfg.max_length)
        sources.scores_checked(rewards[spec], prompts, completions, columns, error=sources.RewardError,
                               when="when probed before training")


def judge(cfg, rewards: dict):
    """The evaluation's scorer: (prompts, responses, columns) -> one score per response, checked like a reward."""
    source = rewards[cfg.gold_reward]

    def score(prompts: list, responses: list[str], columns: dict) -> list:
        return sources.scores_checked(source, prompts, completions_like(prompts, responses), columns,
                                      when="while evaluating")

    return score


def summary_fields(cfg, rewards: dict, algo) -> dict:
    """What summary.json says of the reward and the judge, and the weights of any model loaded beside the base."""
    fields = {"judge": cfg.gold_reward,
              "reward": describe(cfg) if hasattr(cfg, "reward") else
              ("none: trains on --dataset's preferences" if algo.trains_policy else None)}
    models = {name: round(source.memory_mb, 1) for name, source in rewards.items() if source.memory_mb is not None}
    if models:
        fields["reward_model_weights_mb"] = models
    return fields

