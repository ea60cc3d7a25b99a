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

# The fork server lives as long as its bench. A SIGTERM or SIGHUP sent to the bench's whole process group (Slurm,
# a closed terminal) must not end it before the run it forked has stopped and its exit status has reached the
# bench; as it already does for Ctrl-C, it ignores them. Each run installs its own handlers (aligner.cli.main).
import signal  # noqa: E402

signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
