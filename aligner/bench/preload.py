"""Imported by the bench's fork server before it forks any run (aligner.bench.execute): what every run imports,
loaded once. Importing runs no torch operator, so no thread pool exists to break in the forked children."""

import datasets  # noqa: F401
import peft  # noqa: F401
import transformers
import trl  # noqa: F401

import aligner.api  # noqa: F401
import aligner.cli  # noqa: F401
from aligner import plugins

# transformers' lazy attributes import their modules on first access
transformers.LlamaForCausalLM, transformers.AutoModelForCausalLM, transformers.AutoTokenizer  # noqa: B018
plugins.default()
