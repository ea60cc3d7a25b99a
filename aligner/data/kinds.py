"""The three normal forms of training rows, named the way algorithms declare what they train on
(`Algorithm(accepts=...)`); importable without pyarrow or torch, as plugin registration must be."""

PREFERENCE, UNPAIRED, PROMPT = "preference", "unpaired", "prompt"
LAYOUTS = (PREFERENCE, UNPAIRED, PROMPT)
"""Every layout: for algorithms that read only the prompts (online methods, the base)."""
