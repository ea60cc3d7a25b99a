"""The performance suite: memory and speed of aligner's training code at real model shapes
(`python -m benchmarks.perf --help`, from the repository root)."""
