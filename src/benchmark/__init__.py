"""Training-speed measurements used by experiments/benchmark.py."""
