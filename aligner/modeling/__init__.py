"""The one base model and what runs on it: loading and LoRA adapters (`base`), scalar heads (`heads`), the one
sampler (`sampling`) and every log-probability routine (`logprobs`)."""
