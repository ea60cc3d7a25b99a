"""Benchmark programs that are not part of the installed package: the performance suite at real model shapes."""
