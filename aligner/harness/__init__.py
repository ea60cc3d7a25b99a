"""What runs one algorithm and measures it the same way for all: the runner, the run directory, the evaluation,
trackers, the terminal line, peak memory."""
